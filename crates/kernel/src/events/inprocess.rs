//! The in-process transport, for a process that hosts every service (the monolith).
//!
//! Publishing delivers to each local consumer of the event type and returns once each has applied it,
//! found it a duplicate or dead-lettered it. Only then does the relay mark the outbox row published, so a
//! crash at any point leaves the event in the outbox to be delivered again after restart.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{Delivery, Envelope, Transport, TransportError};

/// Delivers events to consumers in this process.
#[derive(Default)]
pub struct InProcess {
    consumers: RwLock<Vec<Arc<Delivery>>>,
}

impl InProcess {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Transport for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn publish(&self, envelope: &Envelope) -> Result<(), TransportError> {
        let consumers: Vec<Arc<Delivery>> = self
            .consumers
            .read()
            .map_err(|_| TransportError::Unavailable("consumer registry poisoned".to_owned()))?
            .iter()
            .filter(|delivery| delivery.handles(&envelope.kind))
            .cloned()
            .collect();
        for delivery in consumers {
            delivery.deliver(envelope).await?;
        }
        Ok(())
    }

    /// Each consumer applies the whole batch in one transaction (see [`Delivery::deliver_batch`]).
    async fn publish_batch(&self, envelopes: &[Envelope]) -> (usize, Option<TransportError>) {
        let consumers: Vec<Arc<Delivery>> = match self.consumers.read() {
            Ok(consumers) => consumers.clone(),
            Err(_) => return (0, Some(TransportError::Unavailable("consumer registry poisoned".to_owned()))),
        };
        for delivery in consumers {
            if let Err(error) = delivery.deliver_batch(envelopes).await {
                return (0, Some(error.into()));
            }
        }
        (envelopes.len(), None)
    }

    async fn subscribe(&self, delivery: Arc<Delivery>) -> Result<(), TransportError> {
        self.consumers
            .write()
            .map_err(|_| TransportError::Unavailable("consumer registry poisoned".to_owned()))?
            .push(delivery);
        Ok(())
    }
}
