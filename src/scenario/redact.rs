//! Secrets kept out of everything the harness writes or prints (issue 16): the password
//! in a URL's userinfo (`http://user:***@host`) and the values of Kafka client options
//! (`[bus] client = {...}`, which carry SASL passwords). `${ENV}` values are kept out by
//! recording the scenario before interpolation (`Scenario::recorded`).

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
