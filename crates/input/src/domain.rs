//! The input service's own ids and states, shared by its rows, rules and views (inboxes, messages,
//! accounts, a channel's kind and a reply's delivery status are in `contracts`). Each is stored as text and
//! read back as itself: text that is not one is an error.

use serde::{Deserialize, Serialize};

kernel::uuid_id! {
    /// One reply's delivery to a callback URL, the same on every attempt (`X-OmniDesk-Delivery`).
    DeliveryId;
}

/// Who chose a contact's source id: the caller of the signed route, or us (widget-style clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Server,
    Widget,
}

impl Origin {
    pub const fn as_str(self) -> &'static str {
        match self {
            Origin::Server => "server",
            Origin::Widget => "widget",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "server" => Some(Origin::Server),
            "widget" => Some(Origin::Widget),
            _ => None,
        }
    }
}

kernel::stored_as_text!(Origin: |origin: &Origin| origin.as_str(), Origin::parse);

/// Which way a transcript line went: the customer's message, or an agent's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TranscriptDirection)]
pub enum Direction {
    Incoming,
    Outgoing,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "incoming" => Some(Direction::Incoming),
            "outgoing" => Some(Direction::Outgoing),
            _ => None,
        }
    }
}

kernel::stored_as_text!(Direction: |direction: &Direction| direction.as_str(), Direction::parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_back_from_its_stored_text_and_serialises_as_it() {
        for origin in [Origin::Server, Origin::Widget] {
            assert_eq!(Origin::parse(origin.as_str()), Some(origin));
            assert_eq!(serde_json::to_value(origin).expect("serialises"), origin.as_str());
        }
        for direction in [Direction::Incoming, Direction::Outgoing] {
            assert_eq!(Direction::parse(direction.as_str()), Some(direction));
            assert_eq!(serde_json::to_value(direction).expect("serialises"), direction.as_str());
        }
        assert_eq!(Origin::parse("Widget"), None);
        assert_eq!(Direction::parse(""), None);
    }
}
