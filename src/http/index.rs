//! `GET /`: the agent's index page. Consul answers it with a short plain text when
//! the web UI is off, and with a permanent redirect to the UI's path when it is on.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::agent::Agent;

/// Consul's text for `/` when the UI is disabled.
const UI_DISABLED: &str = "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.";

/// The answer to `/` for this agent's configuration.
pub fn index(agent: &Arc<Agent>, method: &axum::http::Method) -> Response {
    let cfg = &agent.config;
    if !(cfg.ui || cfg.ui_dir.is_some()) {
        return text(StatusCode::OK, "text/plain; charset=utf-8", UI_DISABLED);
    }
    redirect(&cfg.ui_content_path, method)
}

/// A 301 to `target`, shaped as Go's `http.Redirect` shapes it: a short HTML body
/// for GET and HEAD, none for other methods.
fn redirect(target: &str, method: &axum::http::Method) -> Response {
    let mut r = if *method == axum::http::Method::GET || *method == axum::http::Method::HEAD {
        let body = format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(target)
        );
        text(
            StatusCode::MOVED_PERMANENTLY,
            "text/html; charset=utf-8",
            &body,
        )
    } else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
        r
    };
    if let Ok(v) = HeaderValue::from_str(target) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn text(status: StatusCode, content_type: &'static str, body: &str) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The characters Go's `html.EscapeString` replaces.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_shapes_like_go() {
        let r = redirect("/ui/", &axum::http::Method::GET);
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
        let r = redirect("/ui/", &axum::http::Method::POST);
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        assert_eq!(html_escape("a<\"b\">&'"), "a&lt;&#34;b&#34;&gt;&amp;&#39;");
    }
}
