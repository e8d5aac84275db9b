//! Secrets kept out of everything the harness writes or prints (issue 16): the password
//! in a URL's userinfo (`http://user:***@host`) and the values of Kafka client options
//! (`[bus] client = {...}`, which carry SASL passwords). `${ENV}` values are kept out by
//! recording the scenario before interpolation (`Scenario::recorded`), by naming what the
//! user wrote (action names are the unresolved text), and, where a resolved string or a
//! program's output is quoted (errors, warnings, action output), by masking the values
//! themselves (`Scenario::secrets`; issue 32).

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// `text` with the userinfo of every URL in it redacted: `scheme://user:secret@host`
/// becomes `scheme://user:***@host`, `scheme://token@host` becomes `scheme://***@host`.
pub fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let authority_start = at + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        // The authority ends at the path, query or fragment (or where the text stops looking
        // like a URL).
        let end = after.find(['/', '?', '#', ' ', '"', '\'', '\n', '\t', ',', '<', '>']).unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                match userinfo.split_once(':') {
                    Some((user, _password)) if !user.is_empty() => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(MASK),
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Values shorter than this are not masked: masking `1` or `ok` would garble every
/// message, and no secret is that short.
const MIN_MASKED: usize = 3;

/// `text` with every occurrence of `value` masked (when it is long enough to be a secret).
pub fn mask_value(text: &str, value: &str) -> String {
    if value.len() < MIN_MASKED { text.to_owned() } else { text.replace(value, MASK) }
}

/// `text` with every one of `secrets` masked, and URL userinfo.
pub fn mask_all<'s>(text: &str, secrets: impl IntoIterator<Item = &'s str>) -> String {
    let mut masked = redact_urls(text);
    // Longest first: a secret that contains another is masked whole.
    let mut secrets: Vec<&str> = secrets.into_iter().collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        masked = mask_value(&masked, secret);
    }
    masked
}

/// A request path as shown in a message: the value of every query parameter masked
/// (`/items/k0?token=***&page=***`; issue 32: `validate --target` printed `?token=…`). A
/// query string is where APIs take keys; the path itself is shown as is.
pub fn redact_query(path: &str) -> String {
    let Some((before, query)) = path.split_once('?') else { return path.to_owned() };
    let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map_or(String::new(), |f| format!("#{f}"));
    format!("{before}?{}{fragment}", masked.join("&"))
}

/// The recorded scenario (JSON) with secrets masked: URL userinfo in every string,
/// every `[bus] client` option value.
pub fn redact_recorded(value: &mut serde_json::Value) {
    redact_strings(value);
    if let Some(client) = value.pointer_mut("/bus/client").and_then(|c| c.as_object_mut()) {
        for option in client.values_mut() {
            *option = MASK.into();
        }
    }
}

fn redact_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains("://") => *text = redact_urls(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_strings),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue16_url_userinfo_is_redacted() {
        assert_eq!(redact_urls("http://user:SECRET@host:8080/x?y=1"), "http://user:***@host:8080/x?y=1");
        assert_eq!(redact_urls("http://user:${TOKEN}@host"), "http://user:***@host");
        assert_eq!(redact_urls("https://TOKEN@host/p"), "https://***@host/p");
        assert_eq!(redact_urls("http://:pw@host"), "http://***@host");
        assert_eq!(redact_urls("http://host:80/a@b"), "http://host:80/a@b");
        assert_eq!(redact_urls("plain text"), "plain text");
        assert_eq!(
            redact_urls("target http://a:b@h1/ is unreachable; http://c:d@h2"),
            "target http://a:***@h1/ is unreachable; http://c:***@h2"
        );
        // `@` inside the password: the last `@` of the authority ends the userinfo.
        assert_eq!(redact_urls("http://u:p@ss@host/"), "http://u:***@host/");
    }

    #[test]
    fn issue32_query_values_and_secrets_are_masked() {
        assert_eq!(redact_query("/items/k0?token=abc&page=2&flag"), "/items/k0?token=***&page=***&flag");
        assert_eq!(redact_query("/items/k0"), "/items/k0");
        assert_eq!(redact_query("/a?t=x#frag"), "/a?t=***#frag");
        assert_eq!(mask_all("GET /a/tok3n-long/tok3n", ["tok3n", "tok3n-long"]), "GET /a/***/***");
        assert_eq!(mask_all("exit 1: no", ["1", "no"]), "exit 1: no", "too short to mask");
    }

    #[test]
    fn issue16_recorded_scenario_is_redacted() {
        let mut recorded = serde_json::json!({
            "target": { "base_url": "http://u:literal-secret@h" },
            "bus": { "client": { "sasl.password": "hunter2", "sasl.username": "me" } },
            "cli": { "target": "http://u:cli-secret@h" },
        });
        redact_recorded(&mut recorded);
        let text = recorded.to_string();
        for secret in ["literal-secret", "hunter2", "cli-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(recorded["target"]["base_url"], "http://u:***@h");
    }
}
