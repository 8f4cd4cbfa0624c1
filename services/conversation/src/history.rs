//! What a model is sent: the conversation's system prompt, then the branch being answered, cut
//! to fit. The policy, stated once: the history is limited to `history_tokens` (estimated at
//! four characters a token plus a few per message); the oldest messages are dropped first, a
//! history never starts with an assistant message, and the system prompt and the newest message
//! are always sent. The reply records how many messages were dropped.

use ollama_api::types::Message;

use crate::store::{MessageRecord, Role};

const TOKENS_PER_MESSAGE: usize = 4;

fn estimate(text: &str) -> usize {
    text.chars().count().div_ceil(4) + TOKENS_PER_MESSAGE
}

/// The chat messages for a reply to the last message of `path`, and how many were left out.
pub fn build(system_prompt: Option<&str>, path: &[MessageRecord], budget: usize) -> (Vec<Message>, usize) {
    // A reply that failed before saying anything has nothing to contribute.
    let usable: Vec<&MessageRecord> =
        path.iter().filter(|m| !(m.role == Role::Assistant && m.content.is_empty() && m.status.is_final())).collect();
    let mut used = system_prompt.map_or(0, estimate);
    let mut start = usable.len();
    while start > 0 {
        let cost = estimate(&usable[start - 1].content);
        // The newest message goes whatever it costs.
        if start < usable.len() && used + cost > budget {
            break;
        }
        used += cost;
        start -= 1;
    }
    while start + 1 < usable.len() && usable[start].role == Role::Assistant {
        start += 1;
    }
    let dropped = start + (path.len() - usable.len());
    let mut messages: Vec<Message> =
        system_prompt.filter(|s| !s.trim().is_empty()).map(Message::system).into_iter().collect();
    messages.extend(usable[start..].iter().map(|m| match m.role {
        Role::User => Message::user(m.content.clone()),
        Role::Assistant => Message::new("assistant", m.content.clone()),
    }));
    (messages, dropped)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn msg(role: Role, content: &str) -> MessageRecord {
        MessageRecord::new(Uuid::nil(), None, role, content.to_owned())
    }

    #[test]
    fn roles_are_exact_and_the_system_prompt_comes_first() {
        let path = [msg(Role::User, "hi"), msg(Role::Assistant, "hello"), msg(Role::User, "how are you?")];
        let (messages, dropped) = build(Some("be brief"), &path, 1000);
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(messages[2].content, "hello");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn the_oldest_turns_go_first_and_history_starts_with_the_user() {
        let long = "x".repeat(400); // 100 tokens + 4
        let path = [
            msg(Role::User, &long),
            msg(Role::Assistant, &long),
            msg(Role::User, &long),
            msg(Role::Assistant, &long),
            msg(Role::User, "last"),
        ];
        let roles = |m: &[Message]| m.iter().map(|m| m.role.clone()).collect::<Vec<_>>();
        // Room for the last message and two long ones: the oldest two go.
        let (messages, dropped) = build(None, &path, 220);
        assert_eq!((roles(&messages), dropped), (vec!["user".to_owned(), "assistant".into(), "user".into()], 2));
        // Room for one long one, an assistant message: it goes too, so the history starts with
        // the user; the newest message goes even when it alone is over the budget.
        let (messages, dropped) = build(None, &path, 120);
        assert_eq!((roles(&messages), dropped), (vec!["user".to_owned()], 4));
        let (messages, _) = build(Some("sys"), &path, 1);
        assert_eq!(roles(&messages), ["system", "user"]);
    }
}
