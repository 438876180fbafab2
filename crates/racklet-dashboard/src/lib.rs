//! The Racklet dashboard's front end, built from `dashboard/` (TypeScript, bundled with
//! esbuild: `npm run build --prefix dashboard`) into `dist/`, which is committed so that
//! building Racklet needs no Node; `scripts/test` checks it is what the source builds.
//! The control plane serves these files; the page talks to the control plane's API only.

/// A file of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
}

/// The page (served at `/`).
pub const INDEX: Asset = Asset {
    bytes: include_bytes!("../dist/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// What the page may load: its own scripts, styles and API, nothing inline, nothing from
/// elsewhere, and it may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The file under `/assets/` named `name`.
pub fn asset(name: &str) -> Option<Asset> {
    match name {
        "app.js" => Some(Asset {
            bytes: include_bytes!("../dist/app.js"),
            content_type: "text/javascript; charset=utf-8",
        }),
        "app.css" => Some(Asset {
            bytes: include_bytes!("../dist/app.css"),
            content_type: "text/css; charset=utf-8",
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_has_no_inline_script() {
        let page = std::str::from_utf8(INDEX.bytes).unwrap_or_default();
        assert!(page.contains(r#"src="/assets/app.js""#), "{page}");
        assert!(page.contains(r#"href="/assets/app.css""#), "{page}");
        let inline_scripts = page
            .match_indices("<script")
            .filter(|(at, _)| {
                !page[*at..]
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .contains("src=")
            })
            .count();
        assert_eq!(inline_scripts, 0, "the policy allows no inline script");
        assert!(asset("app.js").is_some_and(|a| !a.bytes.is_empty()));
        assert!(asset("../Cargo.toml").is_none());
    }
}
