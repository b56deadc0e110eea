//! How Raft log entries and transport messages are encoded: MessagePack with named
//! fields (self-describing, so optional and defaulted fields keep working; byte
//! strings raw instead of hex), behind a one-byte marker. Values written before it
//! existed are JSON, which never starts with that byte, and still decode.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of a MessagePack-encoded value.
const MSGPACK: u8 = 0x01;

/// Encodes `v` (MessagePack, marked).
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(MSGPACK);
    rmp_serde::encode::write_named(&mut out, v)
        .map_err(|e| Error::Corrupt(format!("encoding: {e}")))?;
    Ok(out)
}

/// Decodes a value [`encode`] wrote, or one written as JSON before.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    match b.split_first() {
        Some((&MSGPACK, rest)) => {
            rmp_serde::from_slice(rest).map_err(|e| Error::Corrupt(format!("decoding: {e}")))
        }
        _ => Ok(serde_json::from_slice(b)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, WriteCondition};

    #[test]
    fn commands_round_trip_and_json_still_decodes() {
        let cmd = Command::PutContent {
            cid: "C".repeat(64),
            key: "k".into(),
            header: vec![0, 1, 2, 255],
            proposed_version: 7,
            condition: Some(WriteCondition {
                if_none_match: true,
                if_match: None,
            }),
        };
        let packed = encode(&cmd).unwrap();
        assert_eq!(packed[0], MSGPACK);
        assert_eq!(decode::<Command>(&packed).unwrap(), cmd);
        let json = serde_json::to_vec(&cmd).unwrap();
        assert!(json.len() > packed.len());
        assert_eq!(decode::<Command>(&json).unwrap(), cmd);
        let batch = Command::Batch {
            commands: vec![cmd.clone(), cmd],
        };
        assert_eq!(decode::<Command>(&encode(&batch).unwrap()).unwrap(), batch);
        assert!(decode::<Command>(&[MSGPACK, 0xc1]).is_err());
    }
}
