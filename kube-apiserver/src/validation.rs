//! Object name rules and `generateName`, with kube-apiserver's messages.
//!
//! Only names are validated: the server does no schema validation of specs
//! (see the README). Pure functions, unit tested here.

use rand::Rng;

use crate::registry::NameRule;

fn label_ok(s: &str, first_alpha: bool) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first_ok = if first_alpha {
        first.is_ascii_lowercase()
    } else {
        alnum(first)
    };
    first_ok && alnum(last) && bytes.iter().all(|c| alnum(c) || *c == b'-')
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Check `name` against `rule`; the error is the k8s field message
/// (`Invalid value: "x": ...`) for `metadata.name`.
pub fn check_name(rule: NameRule, name: &str) -> Result<(), String> {
    let why = match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                Some("must be no more than 253 characters".to_string())
            } else if !name.split('.').all(|l| label_ok(l, false)) {
                Some(SUBDOMAIN_MSG.to_string())
            } else {
                None
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                Some("must be no more than 63 characters".to_string())
            } else if !label_ok(name, false) {
                Some(LABEL_MSG.to_string())
            } else {
                None
            }
        }
        NameRule::Dns1035Label => {
            if name.len() > 63 {
                Some("must be no more than 63 characters".to_string())
            } else if !label_ok(name, true) {
                Some(DNS1035_MSG.to_string())
            } else {
                None
            }
        }
        NameRule::PathSegment => {
            if name.is_empty() {
                Some("name must not be empty".to_string())
            } else if name == "." || name == ".." {
                Some(format!("may not be '{name}'"))
            } else if name.contains('/') || name.contains('%') {
                Some("may not contain '/' or '%'".to_string())
            } else {
                None
            }
        }
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("Invalid value: \"{name}\": {why}")),
    }
}

/// `generateName` + 5 random characters from k8s' alphabet (no vowels, no
/// look-alikes), the base cut so the result stays a valid label length.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const MAX_BASE: usize = 63 - 5;
    let base: String = base.chars().take(MAX_BASE).collect();
    let mut rng = rand::thread_rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn subdomains() {
        assert!(check_name(NameRule::Subdomain, "my.app-1").is_ok());
        assert!(check_name(NameRule::Subdomain, "0abc").is_ok());
        for bad in ["", "Bad", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(254)] {
            assert!(check_name(NameRule::Subdomain, bad).is_err(), "{bad}");
        }
        let msg = check_name(NameRule::Subdomain, "Bad_Name").unwrap_err();
        assert!(msg.starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn labels() {
        assert!(check_name(NameRule::Label, "team-a").is_ok());
        assert!(check_name(NameRule::Label, "a.b").is_err());
        assert!(check_name(NameRule::Label, &"a".repeat(64)).is_err());
        assert!(check_name(NameRule::Dns1035Label, "web").is_ok());
        assert!(check_name(NameRule::Dns1035Label, "1web").is_err());
        assert!(check_name(NameRule::PathSegment, "system:admin").is_ok());
        assert!(check_name(NameRule::PathSegment, "a/b").is_err());
        assert!(check_name(NameRule::PathSegment, "..").is_err());
    }

    #[test]
    fn generated_names() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
        assert!(check_name(NameRule::Subdomain, &n).is_ok());
        assert_eq!(generate_name(&"x".repeat(80)).len(), 63);
    }
}
