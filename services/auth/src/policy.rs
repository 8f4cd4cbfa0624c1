//! What a valid username, e-mail address and password look like.

use std::collections::HashSet;
use std::sync::LazyLock;

use kit::FieldError;

use crate::error::AuthError;

/// Longer passwords are refused before hashing: hashing cost must not depend on the client.
pub const PASSWORD_MAX_LENGTH: usize = 256;
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const EMAIL_MAX: usize = 254;
pub const ROLE_MIN: usize = 2;
pub const ROLE_MAX: usize = 32;
/// Identity fragments shorter than this are too likely to appear in any password by chance.
const MIN_IDENTITY_FRAGMENT: usize = 3;

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Collects every invalid field of a request before failing, so a form can show them all at once.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn check(&mut self, field: &str, result: Result<(), (&'static str, String)>) -> &mut Self {
        if let Err((code, message)) = result {
            self.0.push(FieldError::new(field, code, message));
        }
        self
    }

    pub fn finish(&mut self) -> Result<(), AuthError> {
        if self.0.is_empty() { Ok(()) } else { Err(AuthError::Validation(std::mem::take(&mut self.0))) }
    }
}

type Check = Result<(), (&'static str, String)>;

pub fn username(name: &str) -> Check {
    let len = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(("invalid_length", format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters")));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(allowed) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err((
            "invalid_format",
            "may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit".into(),
        ));
    }
    Ok(())
}

pub fn role_name(name: &str) -> Check {
    let len = name.chars().count();
    if !(ROLE_MIN..=ROLE_MAX).contains(&len) {
        return Err(("invalid_length", format!("must be {ROLE_MIN} to {ROLE_MAX} characters")));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        return Err(("invalid_format", "may contain only letters, digits, '-' and '_'".into()));
    }
    Ok(())
}

/// A deliberately plain syntax check: one `@`, a local part of RFC 5322 atoms, and a domain of
/// at least two DNS labels. Whether the address exists only a mail can tell.
pub fn email(address: &str) -> Check {
    let invalid = || Err(("invalid_email", "is not a valid e-mail address".to_owned()));
    if address.len() > EMAIL_MAX {
        return Err(("invalid_length", format!("must be at most {EMAIL_MAX} characters")));
    }
    let Some((local, domain)) = address.split_once('@') else { return invalid() };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels.last().is_some_and(|t| t.len() >= 2 && !t.chars().all(|c| c.is_ascii_digit()));
    if local_ok && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok { Ok(()) } else { invalid() }
}

/// The password rules of registration, password change and reset; the password must not contain
/// the account's username or the local part of its e-mail address.
pub fn password(password: &str, min_length: usize, username: &str, email: &str) -> Check {
    let len = password.chars().count();
    if len < min_length {
        return Err(("password_too_short", format!("must be at least {min_length} characters")));
    }
    if len > PASSWORD_MAX_LENGTH {
        return Err(("password_too_long", format!("must be at most {PASSWORD_MAX_LENGTH} characters")));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(lower.as_str()) {
        return Err(("password_too_common", "is one of the most common passwords".into()));
    }
    let local_part = email.split('@').next().unwrap_or_default();
    let contains_identity = [username, local_part]
        .iter()
        .filter(|f| f.chars().count() >= MIN_IDENTITY_FRAGMENT)
        .any(|f| lower.contains(&f.to_lowercase()));
    if contains_identity {
        return Err(("password_contains_identity", "must not contain your username or e-mail address".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: Check) -> Option<&'static str> {
        c.err().map(|(code, _)| code)
    }

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b_c-d", "Z9", "0user", &"x".repeat(32)] {
            if ok.len() >= 3 {
                assert_eq!(code(username(ok)), None, "{ok}");
            }
        }
        assert_eq!(code(username("ab")), Some("invalid_length"));
        assert_eq!(code(username(&"x".repeat(33))), Some("invalid_length"));
        for bad in ["_abc", ".abc", "-abc", "ab c", "abé", "a@b.c"] {
            assert_eq!(code(username(bad)), Some("invalid_format"), "{bad}");
        }
    }

    #[test]
    fn role_names() {
        for ok in ["QA", "Research-Team_2", &"r".repeat(32)] {
            assert_eq!(code(role_name(ok)), None, "{ok}");
        }
        assert_eq!(code(role_name("a")), Some("invalid_length"));
        assert_eq!(code(role_name(&"r".repeat(33))), Some("invalid_length"));
        for bad in ["with space", "dot.ted", "ünï", "a/b"] {
            assert_eq!(code(role_name(bad)), Some("invalid_format"), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org", "x_y@sub-domain.example.io"] {
            assert_eq!(code(email(ok)), None, "{ok}");
        }
        for bad in
            ["plain", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.de", "a..b@c.de", ".a@c.de", "a@-b.co", "a@b.c", "a@1.23"]
        {
            assert_eq!(code(email(bad)), Some("invalid_email"), "{bad}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert_eq!(code(email(&long)), Some("invalid_length"));
    }

    #[test]
    fn passwords() {
        let ok = |p: &str| code(password(p, 10, "alice", "alice.smith@example.org"));
        assert_eq!(ok("correct horse battery"), None);
        assert_eq!(ok("short"), Some("password_too_short"));
        assert_eq!(ok(&"x".repeat(257)), Some("password_too_long"));
        assert_eq!(ok("Password123"), Some("password_too_common"));
        assert_eq!(ok("1234567890"), Some("password_too_common"));
        assert_eq!(ok("my-ALICE-secret"), Some("password_contains_identity"));
        assert_eq!(ok("xx alice.smith yy"), Some("password_contains_identity"));
        // Fragments too short to matter are not held against the password.
        assert_eq!(code(password("jo is my friend", 10, "zed", "jo@example.org")), None);
    }
}
