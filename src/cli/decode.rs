//! `wmbusd decode`: hex telegrams in, one JSON line per telegram out.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::decode::{DecodeError, Decoder};
use crate::frame::{parse_hex, HexError, RadioFrame};
use crate::keys::KeyStore;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wmbusd decode 2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3 \\
      --key 0102030405060708090A0B0C0D0E0F11
  wmbusd decode - < telegrams.txt

Telegrams given in one call share state: a compact frame decodes when its full frame came
earlier in the same call. Exit status: 0 all decoded, 1 at least one failed, 2 usage error.")]
pub struct DecodeArgs {
    /// Hex telegrams starting at the L-field (wireless) or 0x68 (wired long frame), with or
    /// without link-layer CRCs; separators (space _ | #) are ignored. `-` reads one per line
    /// from stdin.
    #[arg(required = true, value_name = "TELEGRAM")]
    telegrams: Vec<String>,

    /// AES-128 key (32 hex digits) to try for every meter that has no key of its own.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,

    /// Take meter keys from this daemon configuration (and its key file).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Pretty-print the JSON (one multi-line object per telegram).
    #[arg(long)]
    pretty: bool,
}

pub fn run(args: DecodeArgs) -> ExitCode {
    let keys = match load_keys(&args) {
        Ok(k) => k,
        Err(message) => {
            eprintln!("wmbusd decode: {message}");
            return ExitCode::from(2);
        }
    };
    let mut decoder = Decoder::new(keys);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut failed = 0usize;
    let mut line_buf = Vec::with_capacity(1024);

    let mut emit =
        |decoder: &mut Decoder, input: &str, out: &mut BufWriter<_>| -> std::io::Result<()> {
            if !decode_one(decoder, input, args.pretty, &mut line_buf) {
                failed += 1;
            }
            out.write_all(&line_buf)?;
            out.write_all(b"\n")
        };

    let result = (|| -> std::io::Result<()> {
        for arg in &args.telegrams {
            if arg == "-" {
                let stdin = std::io::stdin();
                let mut reader = stdin.lock();
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        break;
                    }
                    let input = line.trim();
                    if input.is_empty() || input.starts_with("//") {
                        continue;
                    }
                    emit(&mut decoder, input, &mut out)?;
                }
            } else {
                emit(&mut decoder, arg, &mut out)?;
            }
        }
        out.flush()
    })();

    match result {
        // A closed pipe (`| head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(u8::from(failed > 0))
        }
        Err(e) => {
            eprintln!("wmbusd decode: {e}");
            ExitCode::from(2)
        }
        Ok(()) if failed > 0 => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
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

/// Decodes one telegram into `out` (JSON, no newline). Returns false when it failed.
fn decode_one(decoder: &mut Decoder, input: &str, pretty: bool, out: &mut Vec<u8>) -> bool {
    out.clear();
    let bytes = match parse_telegram(input) {
        Ok(b) => b,
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
    };
    let frame = RadioFrame::new(bytes);
    match decoder.decode(&frame) {
        Ok(reading) => {
            if pretty {
                write_json(out, &reading, true);
            } else if reading.write_json(out).is_err() {
                // Same bytes as serde_json, several times faster; keep a line regardless.
                out.clear();
                write_json(out, &reading, false);
            }
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

/// The telegram bytes of one input. Lines of bare hex digits (what tools and the
/// corpus write) are decoded here in one pass; anything else — separators, a `0x`
/// prefix, bad digits — goes to `parse_hex`, which owns the input rules and messages.
fn parse_telegram(input: &str) -> Result<Vec<u8>, HexError> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let digits = input.as_bytes();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return parse_hex(input);
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks_exact(2) {
        match (
            pair.first().copied().and_then(nibble),
            pair.get(1).copied().and_then(nibble),
        ) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => return parse_hex(input),
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_hex_fast_path_agrees_with_parse_hex() {
        for input in [
            "2E4493157856341233037A2A",
            "2e44931578563412",
            "0x2E44",
            "0X2E44",
            "2E 44",
            "2E4",
            "2Eg4",
            "",
            "00",
            "ÄÄ",
        ] {
            assert_eq!(parse_telegram(input), parse_hex(input), "{input:?}");
        }
    }
}
