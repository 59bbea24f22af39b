//! What a cluster node does with what the other nodes send ([`ClusterNode`], the cluster's
//! [`Node`]): their app servers' messages applied to the clients here, their queries
//! answered from here, requests for server connections passed to the app servers here, and
//! dead nodes announced to them (`["offline", nodeId]`).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use switchboard::protocol::service::{Ack, AckStatus, GroupMemberQueryResponse, Ping, ServiceMessage};

use super::messages::{answer_here, apply};
use crate::cluster::{Answer, Node};
use crate::state::Shared;

/// The relay as its cluster sees it.
pub(crate) struct ClusterNode {
    pub(crate) shared: Weak<Shared>,
}

impl Node for ClusterNode {
    fn report(&self) -> (usize, BTreeMap<String, Vec<String>>) {
        let Some(shared) = self.shared.upgrade() else {
            return (0, BTreeMap::new());
        };
        let mut clients = 0;
        let mut hubs = BTreeMap::new();
        for hub in shared.hubs.all() {
            clients += hub.counts().0;
            let mut servers: Vec<String> = hub
                .one_link_per_server()
                .into_iter()
                .filter_map(|link| link.server_id.clone())
                .collect();
            if !servers.is_empty() {
                servers.sort();
                hubs.insert(hub.key().to_owned(), servers);
            }
        }
        (clients, hubs)
    }

    fn message(&self, hub: &str, message: ServiceMessage) {
        if let Some(shared) = self.shared.upgrade()
            && let Some(hub) = shared.hubs.get(hub)
        {
            apply(&hub, &message);
        }
    }

    fn query(&self, hub: &str, message: ServiceMessage, answer: Answer) {
        let Some(shared) = self.shared.upgrade() else { return };
        let Some(hub) = shared.hubs.get(hub) else {
            // Every live node answers, so the asker need not wait.
            return answer.send(Ack {
                ack_id: 0,
                status: AckStatus::NotFound,
                ..Ack::default()
            });
        };
        // What the query changes here is done now, in the order the messages came.
        let mut here = answer_here(&hub, &message, None, &shared.instance_id);
        tokio::spawn(async move {
            here.finish(&hub).await;
            let payload = matches!(message, ServiceMessage::GroupMemberQuery(_)).then(|| {
                let mut payload = Vec::new();
                GroupMemberQueryResponse {
                    members: std::mem::take(&mut here.members),
                    continuation_token: None,
                }
                .encode(&mut payload);
                payload.into()
            });
            answer.send(Ack {
                ack_id: 0,
                status: if here.found { AckStatus::Ok } else { AckStatus::NotFound },
                message: None,
                payload,
            });
        });
    }

    fn target(&self, hub: &str, server: &str, node: &str) {
        let Some(shared) = self.shared.upgrade() else { return };
        let Some(hub) = shared.hubs.get(hub) else { return };
        let link = hub
            .one_link_per_server()
            .into_iter()
            .find(|link| link.server_id.as_deref() == Some(server));
        if let Some(link) = link {
            let ping = ServiceMessage::Ping(Ping::target(node.to_owned()));
            tokio::spawn(async move { link.send(&ping).await });
        }
    }

    fn node_lost(&self, node: &str) {
        let Some(shared) = self.shared.upgrade() else { return };
        let ping = ServiceMessage::Ping(Ping::offline(node.to_owned()));
        let links: Vec<_> = shared
            .hubs
            .all()
            .iter()
            .flat_map(|hub| hub.one_link_per_server())
            .collect();
        tokio::spawn(async move {
            for link in links {
                link.send(&ping).await;
            }
        });
    }
}

/// Keeps a cluster node's [`ClusterNode`] alive as long as the relay.
pub(crate) fn cluster_node(shared: &Arc<Shared>) -> Arc<ClusterNode> {
    Arc::new(ClusterNode {
        shared: Arc::downgrade(shared),
    })
}
