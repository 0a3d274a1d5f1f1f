//! The user aggregate: registration (which is also the username claim) and later profile and
//! credential changes. Pure, like the room.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::catalogue::{Event, UserRegistered};
use crate::envelope::Envelope;

/// A registered user as the write side knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("username is taken")]
    UsernameTaken,
}

/// Usernames are 3-32 characters of `a-z 0-9 _ -`, compared case-insensitively: this returns
/// the stored (lower-case) form, or why the name is not acceptable.
pub fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let name = raw.to_ascii_lowercase();
    let len = name.chars().count();
    if !(3..=32).contains(&len) {
        return Err("username must be 3-32 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err("username may contain only a-z, 0-9, '_' and '-'");
    }
    Ok(name)
}

/// Registration: `claim` is what the username's subject already holds (`None` if free).
pub fn decide_register(
    claim: Option<&User>,
    user_id: Uuid,
    username: &str,
    display_name: &str,
    password_hash: &str,
) -> Result<Event, UserError> {
    if claim.is_some() {
        return Err(UserError::UsernameTaken);
    }
    Ok(Event::UserRegistered(UserRegistered {
        user_id,
        username: username.to_string(),
        display_name: display_name.to_string(),
        password_hash: password_hash.to_string(),
    }))
}

/// Folds the registration (from the username subject) and the user's own subject.
pub fn evolve(user: Option<User>, envelope: &Envelope) -> Option<User> {
    match &envelope.event {
        Event::UserRegistered(r) => Some(User {
            id: r.user_id,
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            password_hash: r.password_hash.clone(),
            created_at: envelope.occurred_at,
        }),
        Event::UserUpdated(u) => user.map(|mut user| {
            if let Some(d) = &u.display_name {
                user.display_name = d.clone();
            }
            user
        }),
        Event::CredentialsSet(c) => user.map(|mut user| {
            user.password_hash = c.password_hash.clone();
            user
        }),
        _ => user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(normalize_username("Alice_99"), Ok("alice_99".into()));
        assert!(normalize_username("al").is_err());
        assert!(normalize_username(&"a".repeat(33)).is_err());
        assert!(normalize_username("al ice").is_err());
        assert!(normalize_username("alïce").is_err());
    }

    #[test]
    fn registering_a_claimed_name_fails() {
        let existing = User {
            id: Uuid::new_v4(),
            username: "bob".into(),
            display_name: "Bob".into(),
            password_hash: "h".into(),
            created_at: Utc::now(),
        };
        assert_eq!(
            decide_register(Some(&existing), Uuid::new_v4(), "bob", "B", "h2"),
            Err(UserError::UsernameTaken)
        );
        assert!(decide_register(None, Uuid::new_v4(), "bob", "B", "h2").is_ok());
    }
}
