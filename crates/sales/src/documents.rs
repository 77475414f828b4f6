//! A quote rendered as the proposal a customer reads: self-contained HTML, or a PDF set in
//! the PDF base-14 fonts (Helvetica for text, Courier for figures, so columns of amounts
//! align without font metrics). Text outside Windows-1252 prints as `?` in the PDF; the HTML
//! shows it as it is.

use crate::quotes::{find, Quote};
use actix_web::{get, web, HttpRequest, HttpResponse};
use crm_core::access::Permission;
use crm_core::auth::Principal;
use crm_core::error::{ApiError, ApiResult};
use crm_core::extract::path_id;
use crm_core::respond::ReadProblems;
use crm_core::state::AppState;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Text safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Minor units as decimal text (`123456` → `1,234.56`), two decimals.
pub fn money(minor: i64) -> String {
    let (units, cents) = (minor / 100, (minor % 100).abs());
    let digits = units.abs().to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}{grouped}.{cents:02}", if minor < 0 { "-" } else { "" })
}

pub fn render_html(q: &Quote, account_name: &str) -> String {
    let rows: String = q
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                escape(&l.sku), escape(&l.name), l.quantity, money(l.unit_price), money(l.discount), money(l.tax), money(l.total)
            )
        })
        .collect();
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Quote for {account}</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.3em}}.n{{text-align:right}}</style></head>\
<body><h1>Quote for {account}</h1><p>Quote {id} · revision {revision} · {status} · valid until {valid} · amounts in {currency}</p>\
<table><thead><tr><th>SKU</th><th>Product</th><th class=n>Qty</th><th class=n>Unit price</th><th class=n>Discount</th><th class=n>Tax</th><th class=n>Total</th></tr></thead>\
<tbody>{rows}</tbody></table>\
<p class=n>Subtotal {sub}<br>Discounts −{disc}<br>Tax {tax}<br><strong>Total {currency} {total}</strong></p>{notes}</body></html>",
        account = escape(account_name),
        id = escape(&q.id),
        revision = q.revision,
        status = q.status.as_str(),
        valid = escape(q.valid_until.as_deref().unwrap_or("—")),
        currency = escape(&q.currency),
        sub = money(q.subtotal),
        disc = money(q.discount_total),
        tax = money(q.tax_total),
        total = money(q.total),
        notes = q.notes.as_deref().map(|n| format!("<p>{}</p>", escape(n))).unwrap_or_default(),
    )
}

/// Text in Windows-1252 (the fonts' WinAnsiEncoding), `?` for what it can't encode.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|ch| match ch {
            ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(u32::from(ch)).unwrap_or(b'?'),
            '€' => 0x80,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '…' => 0x85,
            '•' => 0x95,
            '–' => 0x96,
            '—' | '−' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// At most `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

const PAGE: (f32, f32) = (595.0, 842.0); // A4 in points.
const MARGIN: f32 = 50.0;
const ROW: f32 = 14.0;
const SIZE: f32 = 9.0;
/// Courier's advance is 600/1000 of the size for every glyph.
const FIGURE_WIDTH: f32 = 0.6 * SIZE;
const ROWS_PER_PAGE: usize = 45;
const TEXT: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");
const FIGURES: Name = Name(b"F3");

/// One page's text, drawn top-down.
struct Sheet {
    content: Content,
    y: f32,
}

impl Sheet {
    fn new() -> Self {
        Sheet {
            content: Content::new(),
            y: PAGE.1 - MARGIN,
        }
    }

    fn text(&mut self, font: Name, size: f32, x: f32, s: &str) {
        self.content
            .begin_text()
            .set_font(font, size)
            .next_line(x, self.y)
            .show(Str(&win_ansi(s)))
            .end_text();
    }

    /// Figures ending at `right`.
    fn figure(&mut self, right: f32, s: &str) {
        let width = s.chars().count() as f32 * FIGURE_WIDTH;
        self.text(FIGURES, SIZE, right - width, s);
    }

    fn down(&mut self, by: f32) {
        self.y -= by;
    }
}

/// Right edges of the figure columns: quantity, unit price, discount, tax, total.
const COLUMNS: [f32; 5] = [285.0, 355.0, 420.0, 475.0, PAGE.0 - MARGIN];

fn header(s: &mut Sheet, q: &Quote, account: &str, page: usize, pages: usize) {
    s.text(
        BOLD,
        16.0,
        MARGIN,
        &format!("Quote for {}", clip(account, 50)),
    );
    s.down(20.0);
    let valid = q.valid_until.as_deref().unwrap_or("-");
    s.text(
        TEXT,
        SIZE,
        MARGIN,
        &format!(
            "Quote {}, revision {}, {}, valid until {valid}, amounts in {}; page {page} of {pages}",
            q.id,
            q.revision,
            q.status.as_str(),
            q.currency
        ),
    );
    s.down(ROW * 2.0);
    s.text(BOLD, SIZE, MARGIN, "SKU");
    s.text(BOLD, SIZE, 115.0, "Product");
    for (label, right) in ["Qty", "Unit price", "Discount", "Tax", "Total"]
        .into_iter()
        .zip(COLUMNS)
    {
        // Bold labels are a little wider than figures; close enough for a heading.
        s.text(BOLD, SIZE, right - label.len() as f32 * 5.0, label);
    }
    s.down(ROW);
}

fn totals(s: &mut Sheet, q: &Quote) {
    s.down(ROW / 2.0);
    let right = COLUMNS[4];
    for (label, amount) in [
        ("Subtotal", money(q.subtotal)),
        ("Discounts", format!("-{}", money(q.discount_total))),
        ("Tax", money(q.tax_total)),
        (&format!("Total {}", q.currency), money(q.total)),
    ] {
        s.text(BOLD, SIZE, 380.0, label);
        s.figure(right, &amount);
        s.down(ROW);
    }
    if let Some(notes) = &q.notes {
        s.down(ROW);
        for line in notes.lines().take(10) {
            s.text(TEXT, SIZE, MARGIN, &clip(line, 110));
            s.down(ROW);
        }
    }
}

pub fn render_pdf(q: &Quote, account: &str) -> Vec<u8> {
    let chunks: Vec<_> = q.lines.chunks(ROWS_PER_PAGE).collect();
    let pages = chunks.len().max(1);
    let mut sheets = vec![];
    for n in 0..pages {
        let mut s = Sheet::new();
        header(&mut s, q, account, n + 1, pages);
        for l in chunks.get(n).copied().unwrap_or_default() {
            s.text(FIGURES, SIZE, MARGIN, &clip(&l.sku, 13));
            s.text(TEXT, SIZE, 115.0, &clip(&l.name, 26));
            let figures = [
                l.quantity.to_string(),
                money(l.unit_price),
                money(l.discount),
                money(l.tax),
                money(l.total),
            ];
            for (f, right) in figures.iter().zip(COLUMNS) {
                s.figure(right, f);
            }
            s.down(ROW);
        }
        if n + 1 == pages {
            totals(&mut s, q);
        }
        sheets.push(s.content.finish().to_vec());
    }
    write_pdf(&sheets, &format!("Quote for {account}"))
}

/// The document: catalog, page tree, three base-14 fonts, one content stream per page.
fn write_pdf(sheets: &[Vec<u8>], title: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let (catalog, tree, info) = (Ref::new(1), Ref::new(2), Ref::new(3));
    let fonts = [
        (TEXT, Ref::new(4), "Helvetica"),
        (BOLD, Ref::new(5), "Helvetica-Bold"),
        (FIGURES, Ref::new(6), "Courier"),
    ];
    let first_page = 7;
    let page_ids: Vec<Ref> = (0..sheets.len())
        .map(|i| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0)))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(page_ids.len()).unwrap_or(1));
    pdf.document_info(info)
        .title(pdf_writer::TextStr(title))
        .producer(pdf_writer::TextStr("crm"));
    for (_, id, base) in fonts {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (sheet, page_id) in sheets.iter().zip(&page_ids) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1))
            .parent(tree)
            .contents(content_id);
        let mut resources = page.resources();
        let mut dict = resources.fonts();
        for (name, id, _) in fonts {
            dict.pair(name, id);
        }
        dict.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, sheet);
    }
    pdf.finish()
}

/// How the proposal is rendered.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DocumentFormat {
    Html,
    Pdf,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentParams {
    /// `html` or `pdf`; without it, `Accept: application/pdf` asks for the PDF, anything else
    /// gets HTML.
    pub format: Option<DocumentFormat>,
}

fn wants(req: &HttpRequest, asked: Option<DocumentFormat>) -> DocumentFormat {
    asked.unwrap_or_else(|| {
        let accept = req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if accept.contains("application/pdf") {
            DocumentFormat::Pdf
        } else {
            DocumentFormat::Html
        }
    })
}

/// Render a quote as a proposal.
///
/// The quote's lines with quantity, unit price, discount, tax and total, and its totals, in
/// the quote's currency: as a self-contained HTML page (no scripts, no external assets) or, with
/// `format=pdf` or `Accept: application/pdf`, as an A4 PDF (45 lines a page, totals on the last).
#[utoipa::path(get, path = "/api/v1/quotes/{id}/document", tag = "quotes",
    params(("id" = String, Path, format = "uuid", description = "Quote id"), DocumentParams),
    responses((status = 200, description = "The proposal", content(
        (String = "text/html"),
        (Vec<u8> = "application/pdf"),
    )), ReadProblems))]
#[get("/quotes/{id}/document")]
pub async fn document(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: Principal,
    id: web::Path<String>,
    query: web::Query<DocumentParams>,
) -> ApiResult<HttpResponse> {
    me.require(Permission::SalesRead)?;
    let id = path_id(&id)?;
    let format = wants(&req, query.into_inner().format);
    let (q, account) = state
        .db(move |c| {
            let q: Quote = find(c, &me, &id)?.into();
            let account = crm_customers::accounts::find(c, &me, &q.account_id)?;
            Ok::<_, ApiError>((q, account.name))
        })
        .await?;
    Ok(match format {
        DocumentFormat::Html => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(render_html(&q, &account)),
        DocumentFormat::Pdf => HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"quote-{}-r{}.pdf\"", q.id, q.revision),
            ))
            .body(render_pdf(&q, &account)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_money() {
        assert_eq!(money(123_456), "1,234.56");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(100_000_000), "1,000,000.00");
    }

    #[test]
    fn pdf_text_is_windows_1252() {
        assert_eq!(win_ansi("Café €5 – ok"), b"Caf\xe9 \x805 \x96 ok");
        assert_eq!(win_ansi("東京"), b"??");
    }
}
