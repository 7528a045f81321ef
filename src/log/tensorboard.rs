//! A synchronous TensorBoard event-file writer: TFRecord-framed `Event` protos (scalars, PNG
//! images, histograms, text), encoded with `prost` and checksummed with CRC-32C.
//!
//! Why not the `tensorboard-rs` crate: it queues events to a thread that drains only on drop (a
//! process that exits early loses them), panics on I/O errors, leaves histograms and text
//! unimplemented, and pulls an old protobuf with a security advisory. Here every `add_*` encodes
//! and writes at once and returns I/O errors, and `flush` makes everything so far durable.
//!
//! TFRecord framing: `len: u64 LE | masked_crc32c(len) | data | masked_crc32c(data)`.
use anyhow::{Context, Result};
use prost::Message;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "4")]
    image: Option<ImageProto>,
    #[prost(message, optional, tag = "5")]
    histo: Option<HistogramProto>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

#[derive(Clone, PartialEq, Message)]
struct ImageProto {
    #[prost(int32, tag = "1")]
    height: i32,
    #[prost(int32, tag = "2")]
    width: i32,
    #[prost(int32, tag = "3")]
    colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    encoded_image_string: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct HistogramProto {
    #[prost(double, tag = "1")]
    min: f64,
    #[prost(double, tag = "2")]
    max: f64,
    #[prost(double, tag = "3")]
    num: f64,
    #[prost(double, tag = "4")]
    sum: f64,
    #[prost(double, tag = "5")]
    sum_squares: f64,
    #[prost(double, repeated, tag = "6")]
    bucket_limit: Vec<f64>,
    #[prost(double, repeated, tag = "7")]
    bucket: Vec<f64>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    /// DataType enum; 1 = DT_FLOAT, 7 = DT_STRING.
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    string_val: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<TensorShapeDim>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeDim {
    #[prost(int64, tag = "1")]
    size: i64,
}

#[derive(Clone, PartialEq, Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    content: Vec<u8>,
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Writes one TensorBoard event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// Creates `events.out.tfevents.<time>.<host>.<pid>.flowlab` in `dir` (a new file each
    /// time, so a resumed run adds to its curves without touching what was written).
    pub fn create(dir: &Path) -> Result<Self> {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let secs = now();
        let name = format!(
            "events.out.tfevents.{:.0}.{}.{}.flowlab",
            secs.floor(),
            host,
            std::process::id()
        );
        let path = dir.join(name);
        let file = File::create(&path)
            .with_context(|| format!("creating event file {}", path.display()))?;
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        w.write_event(Event {
            wall_time: secs,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: Event) -> Result<()> {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let mut io = || -> std::io::Result<()> {
            self.out.write_all(&len)?;
            self.out.write_all(&masked_crc(&len).to_le_bytes())?;
            self.out.write_all(&data)?;
            self.out.write_all(&masked_crc(&data).to_le_bytes())
        };
        io().with_context(|| format!("writing {}", self.path.display()))
    }

    fn write_value(&mut self, step: i64, value: SummaryValue) -> Result<()> {
        self.write_event(Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        })
    }

    fn value(tag: &str) -> SummaryValue {
        SummaryValue {
            tag: tag.to_string(),
            simple_value: None,
            image: None,
            histo: None,
            tensor: None,
            metadata: None,
        }
    }

    /// A scalar; TensorBoard stores it as float32.
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<()> {
        self.write_value(
            step,
            SummaryValue {
                simple_value: Some(value),
                ..Self::value(tag)
            },
        )
    }

    /// An image given as PNG bytes.
    pub fn add_png(
        &mut self,
        tag: &str,
        png: Vec<u8>,
        width: u32,
        height: u32,
        step: i64,
    ) -> Result<()> {
        let image = ImageProto {
            height: height as i32,
            width: width as i32,
            colorspace: 3,
            encoded_image_string: png,
        };
        self.write_value(
            step,
            SummaryValue {
                image: Some(image),
                ..Self::value(tag)
            },
        )
    }

    /// A histogram of `values` in `buckets` equal-width buckets.
    pub fn add_histogram(
        &mut self,
        tag: &str,
        values: &[f64],
        buckets: usize,
        step: i64,
    ) -> Result<()> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return Ok(());
        }
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let buckets = buckets.max(1);
        let width = ((max - min) / buckets as f64).max(1e-12);
        let mut counts = vec![0.0; buckets];
        for v in &finite {
            let i = (((v - min) / width) as usize).min(buckets - 1);
            counts[i] += 1.0;
        }
        let limits = (1..=buckets)
            .map(|i| {
                if i == buckets {
                    max
                } else {
                    min + width * i as f64
                }
            })
            .collect();
        let histo = HistogramProto {
            min,
            max,
            num: finite.len() as f64,
            sum: finite.iter().sum(),
            sum_squares: finite.iter().map(|v| v * v).sum(),
            bucket_limit: limits,
            bucket: counts,
        };
        self.write_value(
            step,
            SummaryValue {
                histo: Some(histo),
                ..Self::value(tag)
            },
        )
    }

    /// Markdown text, shown in TensorBoard's Text tab.
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<()> {
        let tensor = TensorProto {
            dtype: 7,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![TensorShapeDim { size: 1 }],
            }),
            string_val: vec![text.as_bytes().to_vec()],
        };
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: "text".into(),
                content: vec![],
            }),
        };
        self.write_value(
            step,
            SummaryValue {
                tensor: Some(tensor),
                metadata: Some(metadata),
                ..Self::value(tag)
            },
        )
    }

    /// A plugin's record (e.g. the HParams plugin's): its serialized `content` in the summary
    /// metadata, with the empty float tensor TensorBoard's own writers attach.
    pub fn add_plugin_record(
        &mut self,
        tag: &str,
        plugin: &str,
        content: Vec<u8>,
        step: i64,
    ) -> Result<()> {
        let tensor = TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![TensorShapeDim { size: 0 }],
            }),
            string_val: vec![],
        };
        let metadata = SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: plugin.into(),
                content,
            }),
        };
        self.write_value(
            step,
            SummaryValue {
                tensor: Some(tensor),
                metadata: Some(metadata),
                ..Self::value(tag)
            },
        )
    }

    /// Pushes everything written so far to the file and to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("flushing {}", self.path.display()))?;
        self.out
            .get_ref()
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// Reads back the scalars of an event file (for tests and `flowlab` tools): `(tag, step, value)`.
/// Verifies both checksums of every record.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        anyhow::ensure!(
            pos + 12 <= bytes.len(),
            "{}: truncated record header at byte {pos}",
            path.display()
        );
        let len_bytes = &bytes[pos..pos + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        anyhow::ensure!(
            crc == masked_crc(len_bytes),
            "{}: bad length checksum at byte {pos}",
            path.display()
        );
        let start = pos + 12;
        anyhow::ensure!(
            start + len + 4 <= bytes.len(),
            "{}: truncated record at byte {pos}",
            path.display()
        );
        let data = &bytes[start..start + len];
        let crc = u32::from_le_bytes(bytes[start + len..start + len + 4].try_into().unwrap());
        anyhow::ensure!(
            crc == masked_crc(data),
            "{}: bad data checksum at byte {pos}",
            path.display()
        );
        let event = Event::decode(data)
            .with_context(|| format!("{}: bad event at byte {pos}", path.display()))?;
        for v in event.summary.map(|s| s.value).unwrap_or_default() {
            if let Some(x) = v.simple_value {
                out.push((v.tag, event.step, x));
            }
        }
        pos = start + len + 4;
    }
    Ok(out)
}
