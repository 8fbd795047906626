//! What the event-bus tests share: a namespace with a `things` table and an event naming a thing.

use serde::{Deserialize, Serialize};

use super::Event;
use crate::store::{Location, Namespace};

/// A thing got a name; consumers store it in their `things` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ThingNamed {
    pub id: String,
    pub name: String,
    /// Its topic ([`Event::topic`]), which travels in the envelope rather than in the payload.
    #[serde(skip)]
    pub topic: Option<&'static str>,
}

impl ThingNamed {
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned(), name: format!("thing {id}"), topic: None }
    }

    pub fn with_topic(id: &str, topic: &'static str) -> Self {
        Self { topic: Some(topic), ..Self::new(id) }
    }
}

impl Event for ThingNamed {
    const KIND: &'static str = "thing.named";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn topic(&self) -> Option<&'static str> {
        self.topic
    }
}

/// `service`'s namespace under `dir`, migrated (the `things` table and the kernel's event tables).
pub(crate) async fn namespace(dir: &std::path::Path, service: &'static str) -> Namespace {
    let location = Location::default_for(dir, service);
    let namespace = Namespace::open(service, &location, Some(crate::store::TEST_MIGRATIONS)).await.expect("opens");
    namespace.migrate().await.expect("migrates");
    namespace
}
