//! The few protocol-buffer messages of a TensorBoard event file, encoded by hand (fields in
//! number order, proto3 defaults left out, as the Python protobuf runtime writes them), and a
//! small decoder for reading them back.
//!
//! Messages (tensorboard's `event.proto`, `summary.proto`, `plugins/hparams/*.proto`):
//! `Event { wall_time = 1 double, step = 2 int64, file_version = 3 string, summary = 5,
//! session_log = 7 }`, `Summary { value = 1 repeated Value }`, `Summary.Value { tag = 1,
//! simple_value = 2 float, metadata = 9 SummaryMetadata }`, `SummaryMetadata { plugin_data = 1
//! { plugin_name = 1, content = 2 bytes } }`, `SessionLog { status = 1 }`.

use crate::error::{Error, Result};

/// Protocol-buffer wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A message being encoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message(pub Vec<u8>);

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Message(Vec::new())
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// A varint field (int32/int64/enum/bool), written even when zero.
    pub fn uint(mut self, field: u32, v: u64) -> Self {
        self.key(field, VARINT);
        self.varint(v);
        self
    }

    /// A signed varint field (`int64`: negative values take ten bytes, as protobuf writes them).
    pub fn int(self, field: u32, v: i64) -> Self {
        self.uint(field, v as u64)
    }

    /// A `double` field.
    pub fn double(mut self, field: u32, v: f64) -> Self {
        self.key(field, FIXED64);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `float` field.
    pub fn float(mut self, field: u32, v: f32) -> Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(mut self, field: u32, v: &[u8]) -> Self {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    /// A `string` field.
    pub fn string(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    pub fn message(self, field: u32, m: &Message) -> Self {
        self.bytes(field, &m.0)
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// One decoded field's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field<'a> {
    /// A varint (int, enum, bool).
    Varint(u64),
    /// 8 bytes (double, fixed64).
    Fixed64(u64),
    /// Length-delimited (string, bytes, message).
    Bytes(&'a [u8]),
    /// 4 bytes (float, fixed32).
    Fixed32(u32),
}

/// The fields of one message, in file order.
///
/// # Errors
/// `K0502` for a truncated or malformed message (bad varint, unknown wire type, a length past
/// the end). `what` names the message in the error.
pub fn fields<'a>(buf: &'a [u8], what: &str) -> Result<Vec<(u32, Field<'a>)>> {
    let bad = |detail: String| Error::Corrupt {
        path: what.to_string(),
        detail,
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    let varint = |at: &mut usize| -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *buf
                .get(*at)
                .ok_or_else(|| bad(format!("varint cut off at byte {at}")))?;
            *at += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!("varint longer than 10 bytes before byte {at}")))
    };
    while at < buf.len() {
        let key = varint(&mut at)?;
        let field = u32::try_from(key >> 3).map_err(|_| bad(format!("field number {key}")))?;
        let take = |at: &mut usize, n: usize| -> Result<&'a [u8]> {
            let s = buf
                .get(*at..at.saturating_add(n))
                .ok_or_else(|| bad(format!("field {field} needs {n} bytes at byte {at}")))?;
            *at += n;
            Ok(s)
        };
        let value = match (key & 7) as u8 {
            VARINT => Field::Varint(varint(&mut at)?),
            FIXED64 => {
                let s = take(&mut at, 8)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(s);
                Field::Fixed64(u64::from_le_bytes(b))
            }
            LEN => {
                let n = varint(&mut at)?;
                let n = usize::try_from(n).map_err(|_| bad(format!("length {n}")))?;
                Field::Bytes(take(&mut at, n)?)
            }
            FIXED32 => {
                let s = take(&mut at, 4)?;
                Field::Fixed32(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            }
            w => return Err(bad(format!("wire type {w} of field {field}"))),
        };
        out.push((field, value));
    }
    Ok(out)
}

/// A scalar (`Summary.Value.simple_value`) or a plugin summary (`metadata.plugin_data`) of an
/// event.
#[derive(Clone, Debug, PartialEq)]
pub enum SummaryValue {
    /// A scalar: tag and value.
    Scalar {
        /// The tag (`train/loss`).
        tag: String,
        /// Its value (TensorBoard stores `float`).
        value: f32,
    },
    /// A plugin's summary (the hparams plugin's `_hparams_/experiment`, ...).
    Plugin {
        /// The tag.
        tag: String,
        /// `plugin_data.plugin_name`.
        plugin: String,
        /// `plugin_data.content`, the plugin's own message.
        content: Vec<u8>,
    },
}

/// A decoded `Event` (the fields kiln writes; others are skipped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The global step.
    pub step: i64,
    /// `brain.Event:2` in the first event of a file.
    pub file_version: Option<String>,
    /// The summary's values.
    pub values: Vec<SummaryValue>,
    /// `session_log.status` (1 = START), if the event is a session log.
    pub session_log: Option<u64>,
    /// `source_metadata.writer`: the program that wrote the file (first event).
    pub writer: Option<String>,
}

fn utf8(b: &[u8], what: &str) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::Corrupt {
        path: what.to_string(),
        detail: "a string field is not UTF-8".into(),
    })
}

fn summary_value(buf: &[u8], what: &str) -> Result<SummaryValue> {
    let (mut tag, mut simple, mut plugin) = (String::new(), None, None);
    for (f, v) in fields(buf, what)? {
        match (f, v) {
            (1, Field::Bytes(b)) => tag = utf8(b, what)?,
            (2, Field::Fixed32(x)) => simple = Some(f32::from_bits(x)),
            (9, Field::Bytes(meta)) => {
                for (f, v) in fields(meta, what)? {
                    if let (1, Field::Bytes(pd)) = (f, v) {
                        let (mut name, mut content) = (String::new(), Vec::new());
                        for (f, v) in fields(pd, what)? {
                            match (f, v) {
                                (1, Field::Bytes(b)) => name = utf8(b, what)?,
                                (2, Field::Bytes(b)) => content = b.to_vec(),
                                _ => {}
                            }
                        }
                        plugin = Some((name, content));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(match (plugin, simple) {
        (Some((plugin, content)), _) => SummaryValue::Plugin {
            tag,
            plugin,
            content,
        },
        (None, value) => SummaryValue::Scalar {
            tag,
            value: value.unwrap_or(0.0),
        },
    })
}

/// Decodes one event record.
///
/// # Errors
/// `K0502` for a malformed message; `what` names it in the error.
pub fn decode_event(buf: &[u8], what: &str) -> Result<Event> {
    let mut e = Event::default();
    for (f, v) in fields(buf, what)? {
        match (f, v) {
            (1, Field::Fixed64(x)) => e.wall_time = f64::from_bits(x),
            (2, Field::Varint(x)) => e.step = x as i64,
            (3, Field::Bytes(b)) => e.file_version = Some(utf8(b, what)?),
            (5, Field::Bytes(s)) => {
                for (f, v) in fields(s, what)? {
                    if let (1, Field::Bytes(val)) = (f, v) {
                        e.values.push(summary_value(val, what)?);
                    }
                }
            }
            (7, Field::Bytes(s)) => {
                let mut status = 0;
                for (f, v) in fields(s, what)? {
                    if let (1, Field::Varint(x)) = (f, v) {
                        status = x;
                    }
                }
                e.session_log = Some(status);
            }
            (10, Field::Bytes(s)) => {
                for (f, v) in fields(s, what)? {
                    if let (1, Field::Bytes(b)) = (f, v) {
                        e.writer = Some(utf8(b, what)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(e)
}

/// The `Event` header of a file: `wall_time`, `file_version = "brain.Event:2"` and
/// `source_metadata = 10 { writer = 1 }` (tensorboard's writer names itself there too).
pub fn file_version_event(wall_time: f64, writer: &str) -> Vec<u8> {
    let source = Message::new().string(1, writer);
    Message::new()
        .double(1, wall_time)
        .string(3, super::FILE_VERSION)
        .message(10, &source)
        .into_bytes()
}

/// An event holding one summary with these values (`step` 0 is left out, as proto3 does).
pub fn summary_event(wall_time: f64, step: i64, values: &[Message]) -> Vec<u8> {
    let summary = values.iter().fold(Message::new(), |s, v| s.message(1, v));
    let e = Message::new().double(1, wall_time);
    let e = if step != 0 { e.int(2, step) } else { e };
    e.message(5, &summary).into_bytes()
}

/// `Summary.Value { tag, simple_value }`.
pub fn scalar_value(tag: &str, value: f32) -> Message {
    Message::new().string(1, tag).float(2, value)
}

/// `Summary.Value { tag, metadata { plugin_data { plugin_name, content } } }`.
pub fn plugin_value(tag: &str, plugin: &str, content: &[u8]) -> Message {
    let pd = Message::new().string(1, plugin).bytes(2, content);
    let meta = Message::new().message(1, &pd);
    Message::new().string(1, tag).message(9, &meta)
}

/// `Event { wall_time, step, session_log { status } }` (status 1 = START: TensorBoard drops
/// the events of earlier files at this step and after, the steps a resumed run replays).
pub fn session_log_event(wall_time: f64, step: i64, status: u64) -> Vec<u8> {
    let log = Message::new().uint(1, status);
    let e = Message::new().double(1, wall_time);
    let e = if step != 0 { e.int(2, step) } else { e };
    e.message(7, &log).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_event_round_trips() {
        let b = summary_event(1.5, 300, &[scalar_value("train/loss", 0.25)]);
        let e = decode_event(&b, "t").unwrap();
        assert_eq!((e.wall_time, e.step), (1.5, 300));
        assert_eq!(
            e.values,
            vec![SummaryValue::Scalar {
                tag: "train/loss".into(),
                value: 0.25
            }]
        );
        // wall_time (key 0x09), step (0x10, 300 = ac 02), summary (0x2a).
        assert_eq!(&b[..1], &[0x09]);
        assert_eq!(&b[9..12], &[0x10, 0xac, 0x02]);
        assert_eq!(b[12], 0x2a);
    }

    #[test]
    fn malformed_messages_are_k0502() {
        for bad in [
            &[0x0a, 0x05, 1][..],
            &[0x80][..],
            &[0x0b][..],
            &[0x09, 0, 0][..],
        ] {
            assert_eq!(decode_event(bad, "t").unwrap_err().code(), "K0502");
        }
    }
}
