//! Turning sdk errors into messages an operator can act on: what was wrong, and
//! which command or setting fixes it.

/// A mistake in what the user asked (bad name, bad option value, bad configuration
/// file): `oxio` exits with status 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The message for a service that cannot be reached at `addrs`; `what` is
/// `conscience` or `directory`, as in the flag and the environment variable.
pub fn unreachable_hint(addrs: &[String], what: &str) -> String {
    format!(
        "cannot reach the {what} at {}: is the grid running (make up)? Set --{what}, OXIO_{} or `{what}` in the configuration file otherwise",
        addrs.join(","),
        what.to_uppercase()
    )
}

/// What a failed call was about, to name it in the message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target<'a> {
    /// Account.
    pub account: &'a str,
    /// Container, when the call was about one.
    pub container: Option<&'a str>,
    /// Object key, when the call was about one.
    pub key: Option<&'a str>,
}

/// An sdk error as a message naming `target`, with the way out: missing things name
/// the command that lists or creates them, a bad argument is a [`UsageError`], an
/// unavailable service carries the unreachable-directory hint for `dirs`, and
/// anything else keeps the sdk's own message.
pub fn explain(e: oxio_sdk::Error, target: Target<'_>, dirs: &[String]) -> anyhow::Error {
    use oxio_sdk::Error as E;
    let account = target.account;
    let container = target.container.unwrap_or_default();
    match e {
        E::NoSuchContainer => anyhow::anyhow!(
            "container {container:?} does not exist in account {account:?}: see `oxio container list --account {account}`, or create it with `oxio container create {container} --account {account}`"
        ),
        E::NoSuchKey => anyhow::anyhow!(
            "object {:?} does not exist in container {container:?} of account {account:?}: see `oxio object list {container} --account {account}`",
            target.key.unwrap_or_default()
        ),
        E::ContainerExists => anyhow::anyhow!(
            "container {container:?} already exists in account {account:?}"
        ),
        E::ContainerNotEmpty => anyhow::anyhow!(
            "container {container:?} of account {account:?} still holds objects: delete them first (`oxio object list {container} --account {account}`)"
        ),
        E::QuotaExceeded => anyhow::anyhow!(
            "container {container:?} of account {account:?} is at its quota: see `oxio container show {container} --account {account}`; raise it with `oxio container set {container} --quota SIZE` or delete objects"
        ),
        E::InvalidArgument(m) => UsageError(m).into(),
        E::Unavailable(m) => {
            anyhow::Error::new(E::Unavailable(m)).context(unreachable_hint(dirs, "directory"))
        }
        other => anyhow::Error::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_is_missing() {
        let dirs = vec!["127.0.0.1:6001".to_string()];
        let t = Target {
            account: "dev",
            container: Some("b"),
            key: Some("k"),
        };
        let m = explain(oxio_sdk::Error::NoSuchKey, t, &dirs).to_string();
        assert!(m.contains("\"k\"") && m.contains("\"b\"") && m.contains("oxio object list"));
        let m = explain(oxio_sdk::Error::NoSuchContainer, t, &dirs).to_string();
        assert!(m.contains("does not exist") && m.contains("oxio container create b"));
        let e = explain(oxio_sdk::Error::InvalidArgument("bad".into()), t, &dirs);
        assert!(e.downcast_ref::<UsageError>().is_some());
        let e = explain(oxio_sdk::Error::Unavailable("x".into()), t, &dirs);
        assert!(format!("{e:#}").contains("is the grid running"));
    }
}
