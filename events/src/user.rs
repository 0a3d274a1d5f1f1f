//! The user aggregate: registration (which is also the username claim) and later profile and
//! credential changes. Pure, like the room.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::catalogue::{CredentialsSet, Event, UserRegistered, UserUpdated};
use crate::envelope::Envelope;

/// A registered user as the write side knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    /// Empty for a user an app manages (who has no password).
    pub password_hash: String,
    /// The service token that created an app-managed user.
    pub service_token_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// Whether an app manages this user's sign-in (created with a service token, no
    /// password of their own).
    pub fn is_app_managed(&self) -> bool {
        self.service_token_id.is_some()
    }
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

/// How a new user signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// With a password: its Argon2 hash.
    Password(String),
    /// Through the app whose service token created them: no password.
    App { service_token_id: Uuid },
}

/// Registration: `claim` is what the username's subject already holds (`None` if free).
pub fn decide_register(
    claim: Option<&User>,
    user_id: Uuid,
    username: &str,
    display_name: &str,
    sign_in: SignIn,
) -> Result<Event, UserError> {
    if claim.is_some() {
        return Err(UserError::UsernameTaken);
    }
    let (password_hash, service_token_id) = match sign_in {
        SignIn::Password(hash) => (hash, None),
        SignIn::App { service_token_id } => (String::new(), Some(service_token_id)),
    };
    Ok(Event::UserRegistered(UserRegistered {
        user_id,
        username: username.to_string(),
        display_name: display_name.to_string(),
        password_hash,
        service_token_id,
    }))
}

/// What `PATCH /me` appends for `user`: a new password (hashed) makes a credentials event,
/// carrying a display name changed with it; a display name alone makes `user.updated`; a
/// display name that is already the user's is no change. `None`: nothing to append.
pub fn decide_update(
    user: &User,
    display_name: Option<&str>,
    password_hash: Option<String>,
) -> Option<Event> {
    let display_name = display_name
        .filter(|d| *d != user.display_name)
        .map(str::to_string);
    match password_hash {
        Some(password_hash) => Some(Event::CredentialsSet(CredentialsSet {
            user_id: user.id,
            password_hash,
            display_name,
        })),
        None => display_name.map(|display_name| {
            Event::UserUpdated(UserUpdated {
                user_id: user.id,
                display_name: Some(display_name),
            })
        }),
    }
}

/// Folds the registration (from the username subject) and the user's own subject.
pub fn evolve(user: Option<User>, envelope: &Envelope) -> Option<User> {
    match &envelope.event {
        Event::UserRegistered(r) => Some(User {
            id: r.user_id,
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            password_hash: r.password_hash.clone(),
            service_token_id: r.service_token_id,
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
            if let Some(d) = &c.display_name {
                user.display_name = d.clone();
            }
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
            service_token_id: None,
            created_at: Utc::now(),
        };
        assert_eq!(
            decide_register(
                Some(&existing),
                Uuid::new_v4(),
                "bob",
                "B",
                SignIn::Password("h2".into())
            ),
            Err(UserError::UsernameTaken)
        );
        assert!(
            decide_register(
                None,
                Uuid::new_v4(),
                "bob",
                "B",
                SignIn::Password("h2".into())
            )
            .is_ok()
        );
    }

    fn bob() -> User {
        User {
            id: Uuid::from_u128(7),
            username: "bob".into(),
            display_name: "Bob".into(),
            password_hash: "old".into(),
            service_token_id: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_profile_update_is_one_event_or_none() {
        let bob = bob();
        assert_eq!(decide_update(&bob, Some("Bob"), None), None, "no change");
        assert_eq!(decide_update(&bob, None, None), None);
        assert_eq!(
            decide_update(&bob, Some("Robert"), None),
            Some(Event::UserUpdated(UserUpdated {
                user_id: bob.id,
                display_name: Some("Robert".into()),
            }))
        );
        assert_eq!(
            decide_update(&bob, Some("Robert"), Some("new".into())),
            Some(Event::CredentialsSet(CredentialsSet {
                user_id: bob.id,
                password_hash: "new".into(),
                display_name: Some("Robert".into()),
            })),
            "a password and a name change together are one credentials event"
        );
    }

    #[test]
    fn a_credentials_event_changes_the_hash_and_any_name_with_it() {
        let envelope = |event| Envelope::new(Uuid::nil(), Utc::now(), None, None, event);
        let changed = evolve(
            Some(bob()),
            &envelope(decide_update(&bob(), Some("Robert"), Some("new".into())).unwrap()),
        )
        .unwrap();
        assert_eq!(
            (
                changed.password_hash.as_str(),
                changed.display_name.as_str()
            ),
            ("new", "Robert")
        );
    }
}
