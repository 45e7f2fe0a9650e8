//! `wmbusd decode`: hex telegrams in, one JSON line per telegram out.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::decode::{DecodeError, Decoder};
use crate::frame::{parse_hex, parse_hex_into, CrcState, FrameFormat, RadioFrame};
use crate::keys::KeyStore;
use crate::reading::Reading;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wmbusd decode 2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3 \\
      --key 0102030405060708090A0B0C0D0E0F11
  wmbusd decode - < telegrams.txt
  wmbusd decode --config config/wmbusd.toml - < config/demo-telegrams.txt
  wmbusd decode --explain --config /etc/wmbusd/wmbusd.toml 2E44931578563412...

--explain prints, instead of JSON, every byte of each telegram layer by layer (link, ELL,
AFL, TPL, security, records with DIF/VIF meaning, value and unit), marks bytes no layer
used, and after a failure says what failed (wrong key, MAC failure, no key, CRC error,
unknown compact format, ...) and what to do. Keys are named by fingerprint, never printed.
With --last-counter N or --state-file FILE it also judges a mode-7 telegram's message
counter as the daemon does, and names an old one a replay.

A meter a manufacturer driver matches (built-in, or dropped into --drivers DIR; see
`wmbusd drivers list`) also gets \"driver\" and named \"fields\" in its reading.

Telegrams given in one call share state: a compact frame decodes when its full frame came
earlier in the same call. Exit status: 0 all decoded, 1 at least one failed, 2 usage error.")]
pub struct DecodeArgs {
    /// Hex telegrams starting at the L-field (wireless) or 0x68 (wired long frame), with or
    /// without link-layer CRCs; separators (space _ | #) are ignored. `-` reads stdin the
    /// way the replay radio reads its file: one telegram per line, `#` starts a comment,
    /// an optional `rssi_dbm;` (and recorded `time;`) prefix.
    #[arg(required = true, value_name = "TELEGRAM")]
    telegrams: Vec<String>,

    /// AES-128 key (32 hex digits) to try for every meter that has no key of its own.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,

    /// Take meter keys from this daemon configuration (and its key file).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Pretty-print the JSON (one multi-line object per telegram).
    #[arg(long, conflicts_with = "explain")]
    pretty: bool,

    /// Also load the driver definitions (*.toml) of this directory, ahead of the built-ins.
    #[arg(long, value_name = "DIR")]
    drivers: Option<PathBuf>,

    /// Explain every byte of each telegram, layer by layer, as text instead of JSON.
    #[arg(long)]
    explain: bool,

    /// Link-layer CRCs of the hex: `auto` finds them from the bytes (a frame in which
    /// any block CRC of format A or B matches is of that format, so a failing block is
    /// a CRC error); `a` / `b`: CRCs present in that format, all checked; `none`: CRCs
    /// already removed (a frame is then never searched for them).
    #[arg(long, value_name = "auto|a|b|none", default_value = "auto", value_parser = parse_crc)]
    crc: CrcState,

    /// Hand-pasted hex with a wrong L-field: read a wireless frame longer than its
    /// L-field whole, L rewritten; the reading says so (`diagnostics.lenient_length`).
    /// Without it, bytes after the L-field are counted (`diagnostics.trailing_bytes`)
    /// and never decoded.
    #[arg(long)]
    lenient_length: bool,

    /// With --explain: the last message counter the gateway accepted from the meter (its
    /// health document's `message_counter`); a mode-7 telegram whose authenticated
    /// counter is not above it is named a replay, as the daemon would reject it.
    #[arg(long, value_name = "N", requires = "explain")]
    last_counter: Option<u32>,

    /// With --explain: judge replays against the daemon's state file (its `replay`
    /// section, e.g. /var/lib/wmbusd/state.json) with the tolerance of --config.
    #[arg(long, value_name = "FILE", requires = "explain")]
    state_file: Option<PathBuf>,
}

/// The replay book of `--last-counter` / `--state-file`; `None` when neither is given.
fn replay_book(args: &DecodeArgs) -> Result<Option<crate::replay::Book>, String> {
    if args.last_counter.is_none() && args.state_file.is_none() {
        return Ok(None);
    }
    let mut book = crate::replay::Book {
        fixed: args.last_counter,
        ..Default::default()
    };
    if let Some(path) = &args.config {
        let config = crate::config::Config::load(path).map_err(|e| e.to_string())?;
        book.rule = config.pipeline.replay_rule();
    }
    if let Some(path) = &args.state_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("state file {}: {e}", path.display()))?;
        book.read_state(&text)
            .map_err(|e| format!("state file {}: {e}", path.display()))?;
    }
    Ok(Some(book))
}

fn parse_crc(text: &str) -> Result<CrcState, String> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(CrcState::Unknown),
        "a" => Ok(CrcState::Present(FrameFormat::A)),
        "b" => Ok(CrcState::Present(FrameFormat::B)),
        "none" => Ok(CrcState::Checked(None)),
        other => Err(format!("{other:?} is not one of auto, a, b, none")),
    }
}

pub fn run(args: DecodeArgs) -> ExitCode {
    let (mut decoder, book) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("wmbusd decode: {message}");
            return ExitCode::from(2);
        }
    };
    let mut session = Session::new(&args, book);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = args
        .telegrams
        .iter()
        .try_for_each(|arg| match arg.as_str() {
            "-" => session.stdin(&mut decoder, &mut out),
            telegram => session.emit(&mut decoder, telegram, None, &mut out),
        })
        .and_then(|()| out.flush());
    let failed = session.failed > 0;
    match result {
        // A closed pipe (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(u8::from(failed)),
        Err(e) => {
            eprintln!("wmbusd decode: {e}");
            ExitCode::from(2)
        }
        Ok(()) => ExitCode::from(u8::from(failed)),
    }
}

/// The decoder with its keys and drivers, and the replay book of `--explain`.
fn prepare(args: &DecodeArgs) -> Result<(Decoder, Option<crate::replay::Book>), String> {
    let keys = load_keys(args)?;
    let drivers = super::drivers::load(args.drivers.as_ref())?;
    let book = replay_book(args)?;
    Ok((Decoder::with_drivers(keys, drivers), book))
}

/// The state of one `wmbusd decode` call: its options, the buffers every telegram is
/// decoded into, and the count of failed telegrams.
struct Session {
    pretty: bool,
    explain: bool,
    book: Option<crate::replay::Book>,
    /// The frame every telegram's bytes are parsed into, with the call's CRC and
    /// L-field options.
    frame: RadioFrame,
    reading: Reading,
    line: Vec<u8>,
    count: usize,
    failed: usize,
}

impl Session {
    fn new(args: &DecodeArgs, book: Option<crate::replay::Book>) -> Session {
        Session {
            pretty: args.pretty,
            explain: args.explain,
            book,
            frame: RadioFrame {
                crc: args.crc,
                lenient_length: args.lenient_length,
                ..RadioFrame::new(Vec::with_capacity(256))
            },
            reading: Reading::default(),
            line: Vec::with_capacity(1024),
            count: 0,
            failed: 0,
        }
    }

    /// Every telegram line of stdin, read the way the replay radio reads its file.
    fn stdin(&mut self, decoder: &mut Decoder, out: &mut impl Write) -> std::io::Result<()> {
        let mut reader = std::io::stdin().lock();
        let mut line = String::new();
        let mut number = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            number += 1;
            let input = line.trim();
            if input.starts_with("//") {
                continue;
            }
            // Lines as the replay radio reads them: `#` comments, `rssi;` and `time;`
            // prefixes. A malformed prefix is reported as input error.
            match crate::radio::replay::split_line(input, number) {
                Ok(None) => {}
                Ok(Some(parts)) => self.emit(decoder, parts.hex, parts.rssi_dbm, out)?,
                Err(_) => self.emit(decoder, input, None, out)?,
            }
        }
    }

    /// Decodes (or explains) one telegram and writes its line.
    fn emit(
        &mut self,
        decoder: &mut Decoder,
        input: &str,
        rssi_dbm: Option<f32>,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        self.count += 1;
        self.frame.rssi_dbm = rssi_dbm;
        let ok = if self.explain {
            let frame = RadioFrame {
                crc: self.frame.crc,
                lenient_length: self.frame.lenient_length,
                rssi_dbm,
                ..RadioFrame::new(Vec::new())
            };
            let book = self.book.as_mut();
            explain_one(decoder, input, self.count, frame, (&mut self.line, book))
        } else {
            let buffers = (&mut self.frame, &mut self.reading);
            decode_one(decoder, input, self.pretty, buffers, &mut self.line)
        };
        if !ok {
            self.failed += 1;
        }
        out.write_all(&self.line)?;
        out.write_all(b"\n")
    }
}

fn load_keys(args: &DecodeArgs) -> Result<KeyStore, String> {
    let mut keys = KeyStore::new();
    if let Some(path) = &args.config {
        let config = crate::config::Config::load(path).map_err(|e| e.to_string())?;
        for (id, key) in config.keys() {
            keys.insert_hex(&id, &key)
                .map_err(|e| format!("meter {id}: {e}"))?;
        }
    }
    if let Some(hex) = &args.key {
        keys.set_default_hex(hex)
            .map_err(|e| format!("--key: {e}"))?;
    }
    Ok(keys)
}

/// Decodes one telegram into `out` (JSON, no newline); `frame` and `reading` are
/// reused buffers. Returns false when it failed.
fn decode_one(
    decoder: &mut Decoder,
    input: &str,
    pretty: bool,
    (frame, reading): (&mut RadioFrame, &mut Reading),
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    match parse_hex_into(input, &mut frame.bytes) {
        Ok(()) => {}
        Err(e) => {
            let err = DecodeError::input(e.to_string());
            write_json(
                out,
                &ErrorLine {
                    error: &err,
                    telegram: input,
                },
                pretty,
            );
            return false;
        }
    }
    match decoder.decode_into(frame, reading) {
        Ok(()) => {
            write_json(out, reading, pretty);
            true
        }
        Err(err) => {
            let telegram = hex::encode_upper(&frame.bytes);
            write_json(
                out,
                &ErrorLine {
                    error: &err,
                    telegram: &telegram,
                },
                pretty,
            );
            false
        }
    }
}

/// Writes the `--explain` text of one telegram into `out`. Returns false when it failed.
fn explain_one(
    decoder: &mut Decoder,
    input: &str,
    number: usize,
    mut frame: RadioFrame,
    (out, book): (&mut Vec<u8>, Option<&mut crate::replay::Book>),
) -> bool {
    out.clear();
    let bytes = match parse_hex(input) {
        Ok(b) => b,
        Err(e) => {
            let label = crate::decode::FailureKind::Input.label();
            out.extend_from_slice(
                format!("telegram {number}: not hex\ndiagnosis: {label}: {e}\n").as_bytes(),
            );
            return false;
        }
    };
    frame.bytes = bytes;
    let mut explanation = crate::explain::explain(decoder, &frame);
    if let Some(book) = book {
        let now = crate::replay::unix_secs(std::time::SystemTime::now());
        explanation.judge_replay(decoder, book, now);
    }
    let header = format!("telegram {number}: {} bytes\n", frame.bytes.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(explanation.render().as_bytes());
    matches!(explanation.outcome, crate::explain::Outcome::Decoded { .. })
}

#[derive(serde::Serialize)]
struct ErrorLine<'a> {
    error: &'a DecodeError,
    telegram: &'a str,
}

fn write_json<T: serde::Serialize>(out: &mut Vec<u8>, value: &T, pretty: bool) {
    let result = if pretty {
        serde_json::to_writer_pretty(&mut *out, value)
    } else {
        serde_json::to_writer(&mut *out, value)
    };
    // Serialising our own types into a Vec cannot fail; keep a valid line anyway if it does.
    if let Err(e) = result {
        out.clear();
        let fallback = serde_json::json!({ "error": { "message": e.to_string() } });
        out.extend_from_slice(fallback.to_string().as_bytes());
    }
}
