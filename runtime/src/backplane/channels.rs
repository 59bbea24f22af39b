//! The Redis channels of one hub, named as ASP.NET Core's backplane names them
//! (`RedisChannels`): `{prefix}:all`, `{prefix}:group:{group}`, `{prefix}:user:{user}`,
//! `{prefix}:connection:{id}`, `{prefix}:internal:groups`, `{prefix}:internal:ack:{server}`
//! and `{prefix}:internal:return:{server}`, where the prefix is the hub's full type name in
//! .NET (here [`RedisBackplane::channel_prefix`](super::RedisBackplane::channel_prefix)).

/// The channel names of one hub.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    prefix: String,
}

/// What a channel a message arrived on carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel<'a> {
    All,
    Group(&'a str),
    User(&'a str),
    Connection(&'a str),
    GroupManagement,
    /// Acks of this server's group commands.
    Ack,
    /// Client results this server asked for.
    Results,
}

impl Channels {
    pub fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub fn all(&self) -> String {
        format!("{}:all", self.prefix)
    }

    pub fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    pub fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.prefix)
    }

    pub fn connection(&self, id: &str) -> String {
        format!("{}:connection:{id}", self.prefix)
    }

    pub fn group_management(&self) -> String {
        format!("{}:internal:groups", self.prefix)
    }

    pub fn ack(&self, server: &str) -> String {
        format!("{}:internal:ack:{server}", self.prefix)
    }

    pub fn results(&self, server: &str) -> String {
        format!("{}:internal:return:{server}", self.prefix)
    }

    /// What `channel` carries, if it is one of this hub's that server `me` listens to.
    pub fn parse<'c>(&self, channel: &'c str, me: &str) -> Option<Channel<'c>> {
        let rest = channel.strip_prefix(self.prefix.as_str())?.strip_prefix(':')?;
        Some(match rest {
            "all" => Channel::All,
            "internal:groups" => Channel::GroupManagement,
            _ => {
                if let Some(group) = rest.strip_prefix("group:") {
                    Channel::Group(group)
                } else if let Some(user) = rest.strip_prefix("user:") {
                    Channel::User(user)
                } else if let Some(id) = rest.strip_prefix("connection:") {
                    Channel::Connection(id)
                } else if rest.strip_prefix("internal:ack:") == Some(me) {
                    Channel::Ack
                } else if rest.strip_prefix("internal:return:") == Some(me) {
                    Channel::Results
                } else {
                    return None;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_aspnetcores() {
        let channels = Channels::new("Chat.Hubs.ChatHub".into());
        assert_eq!(channels.all(), "Chat.Hubs.ChatHub:all");
        assert_eq!(channels.group("g:1"), "Chat.Hubs.ChatHub:group:g:1");
        assert_eq!(channels.user("u"), "Chat.Hubs.ChatHub:user:u");
        assert_eq!(channels.connection("c"), "Chat.Hubs.ChatHub:connection:c");
        assert_eq!(channels.group_management(), "Chat.Hubs.ChatHub:internal:groups");
        assert_eq!(channels.ack("s1"), "Chat.Hubs.ChatHub:internal:ack:s1");
        assert_eq!(channels.results("s1"), "Chat.Hubs.ChatHub:internal:return:s1");
        assert_eq!(
            channels.parse(&channels.group("g:1"), "s1"),
            Some(Channel::Group("g:1"))
        );
        assert_eq!(channels.parse(&channels.ack("s1"), "s1"), Some(Channel::Ack));
        assert_eq!(channels.parse(&channels.ack("s2"), "s1"), None, "another server's acks");
        assert_eq!(channels.parse("Other:all", "s1"), None);
        assert_eq!(channels.parse("Chat.Hubs.ChatHubX:all", "s1"), None);
    }
}
