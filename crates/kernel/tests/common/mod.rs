//! What the RabbitMQ tests from the outside share: the test broker, and an event to send through it.

use kernel::events::Event;
use serde::{Deserialize, Serialize};

#[allow(dead_code)]
#[path = "../../src/events/rabbitmq/test_broker.rs"]
pub mod test_broker;

#[derive(Debug, Serialize, Deserialize)]
pub struct ThingNamed {
    pub id: String,
}

impl Event for ThingNamed {
    const KIND: &'static str = "thing.named";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}
