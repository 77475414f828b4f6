//! The migrations are embedded in the binary (`embed_migrations!`): a new migration folder
//! must rebuild this crate, which `include_str!` alone does not notice.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
