//! `crm`: the CRM API server and its command line.

use clap::{Parser, Subcommand};
use crm_core::access::Role;
use crm_core::audit::Actor;
use crm_core::config::Config;
use crm_core::identity::users::{create_user, CreateUser};
use crm_core::jobs::{JobRegistry, WorkerPool};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "crm", version, about = "Headless operational CRM API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Fill the database with deterministic demo data (scale 1: 1M contacts).
    Seed {
        /// 1 = 100,000 accounts, 1,000,000 contacts, 3,000,000 activities.
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
        /// The same seed gives the same data.
        #[arg(long, default_value_t = 20261201)]
        seed: u64,
    },
    /// Serve one JSON file from memory on CRM_LISTEN, with no database, middleware or
    /// auth: the bench's measure of what actix-web itself allows on this machine.
    #[command(hide = true)]
    Baseline {
        #[arg(long)]
        body: std::path::PathBuf,
    },
    /// Manage users from the shell.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password comes from CRM_USER_PASSWORD or is generated and printed.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role; one of {}", all.join(", "))
    })
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Some(Command::Openapi)) {
        init_tracing(config.log_format_json);
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config),
        Command::Openapi => {
            print!("{}", crm_gateway::openapi::document_json());
            Ok(())
        }
        Command::User {
            command: UserCommand::Create { email, name, role },
        } => user_create(&config, email, name, role),
        Command::Seed { scale, seed } => seed_data(&config, scale, seed),
        Command::Baseline { body } => baseline(&config, &body),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: &Config) -> Result<(), String> {
    crm_core::db::connect_and_migrate(&config.database_url, 1, config.pg_session_limits)
        .map_err(|e| e.to_string())?;
    println!(
        "migrations applied to {}",
        crm_core::db::redact_url(&config.database_url)
    );
    Ok(())
}

fn seed_data(config: &Config, scale: f64, seed: u64) -> Result<(), String> {
    let pool = crm_core::db::connect_and_migrate(&config.database_url, 1, config.pg_session_limits)
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    eprintln!("seeding at scale {scale} (seed {seed})");
    let done = crm_gateway::seed::seed(&pool, scale, seed)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} accounts, {} contacts, {} activities, {} leads, {} opportunities, {} orders \
         with {} lines, {} tickets, {} campaigns with {} members, {} touchpoints, {} email consents in {secs:.1} s",
        done.accounts,
        done.contacts,
        done.activities,
        done.sales.leads,
        done.sales.opportunities,
        done.sales.orders,
        done.sales.order_lines,
        done.tickets,
        done.marketing.campaigns,
        done.marketing.members,
        done.marketing.touchpoints,
        done.marketing.consents
    );
    Ok(())
}

fn user_create(config: &Config, email: String, name: String, role: Role) -> Result<(), String> {
    let pool = crm_core::db::connect_and_migrate(&config.database_url, 1, config.pg_session_limits)
        .map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let (password, generated) = match std::env::var("CRM_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (
            crm_core::auth::random_token(18).map_err(|e| e.to_string())?,
            true,
        ),
    };
    let input = CreateUser {
        email,
        name,
        role,
        team_id: None,
        password: Some(password.clone()),
    };
    let user = create_user(&mut conn, &input, &Actor::system()).map_err(|e| match e {
        crm_core::ApiError::Validation { errors, .. } => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })?;
    println!(
        "created user {} ({}) with role {}",
        user.email,
        user.id,
        user.role.as_str()
    );
    if generated {
        println!("password (shown once): {password}");
    }
    Ok(())
}

fn baseline(config: &Config, body: &std::path::Path) -> Result<(), String> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let body = web::Bytes::from(std::fs::read(body).map_err(|e| e.to_string())?);
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .bind(&config.listen)
    .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    actix_web::rt::System::new()
        .block_on(server.run())
        .map_err(|e| e.to_string())
}

fn serve(config: Config) -> Result<(), String> {
    let listen = config.listen.clone();
    let workers = config.job_workers;
    let (state, boot) = crm_gateway::build_state(config, JobRegistry::default())?;
    let listener = std::net::TcpListener::bind(&listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let pool = WorkerPool::start(state.pool.clone(), state.jobs.clone(), workers);
    print_banner(&addr.to_string(), &boot);
    let result = actix_web::rt::System::new()
        .block_on(async move { crm_gateway::serve(state, listener)?.await });
    pool.shutdown();
    result.map_err(|e| e.to_string())
}

fn print_banner(addr: &str, boot: &crm_gateway::Bootstrap) {
    let base = format!("http://{addr}");
    println!("CRM API listening on {base}");
    println!("  API:     {base}/api/v1");
    println!("  Docs:    {base}/docs/");
    println!("  OpenAPI: {base}/openapi.json");
    match &boot.admin {
        Some((email, Some(password))) => {
            println!("Created the first admin {email} with password (shown once): {password}");
            println!("Get a token:");
            println!("  curl -s {base}/api/v1/auth/login -H 'Content-Type: application/json' -d '{{\"email\":\"{email}\",\"password\":\"{password}\"}}'");
        }
        Some((email, None)) => {
            println!("Created the first admin {email} with the password from CRM_ADMIN_PASSWORD.");
            println!("Get a token:");
            println!("  curl -s {base}/api/v1/auth/login -H 'Content-Type: application/json' -d '{{\"email\":\"{email}\",\"password\":\"'\"$CRM_ADMIN_PASSWORD\"'\"}}'");
        }
        None => {
            println!("Get a token:");
            println!("  curl -s {base}/api/v1/auth/login -H 'Content-Type: application/json' -d '{{\"email\":\"you@example.com\",\"password\":\"…\"}}'");
        }
    }
}
