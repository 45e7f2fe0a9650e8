//! Steps for the meters of the Kamstrup helper's set whose vendor bytes a table cannot
//! read alone.

use super::{StepError, StepInput};

/// Type byte of the GWF water meter's manufacturer block whose layout is known.
const GWF_BLOCK_TYPE_STATUS: u8 = 0x01;

/// GWF water meters: the manufacturer block (after DIF 0x0F) starts with a type byte;
/// only type 0x01 is known, and it carries a status byte and a byte whose bit 0 is the
/// power-saving mode and whose bits 7..3 are the remaining battery life in half years.
/// Outputs `[status, battery/power byte]`; another type is an error, so that no field
/// is read from a block of unknown layout.
pub fn gwf_status_block(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "gwf_status_block";
    match input.bytes(STEP, 0, 1)? {
        [GWF_BLOCK_TYPE_STATUS] => Ok(input.bytes(STEP, 1, 2)?.to_vec()),
        other => Err(StepError::Invalid {
            step: STEP,
            offset: 0,
            reason: format!(
                "manufacturer block type 0x{} is not known (only 0x01 is)",
                hex::encode_upper(other)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;

    fn run(data: &[u8]) -> Result<Vec<u8>, StepError> {
        // GWF water meter 19680750 of the corpus (link address of its radio module).
        let link = [0x44, 0xE6, 0x1E, 0x46, 0x44, 0x15, 0x10, 0x02, 0x0E];
        gwf_status_block(&test_input(0x72, &link, data))
    }

    #[test]
    fn type_1_block_gives_status_and_battery_bytes() {
        // Corpus: "0F 01 00 E3": status 0, battery byte 0xE3 (28 half years, saving).
        assert_eq!(run(&[0x01, 0x00, 0xE3]), Ok(vec![0x00, 0xE3]));
        // Fillers after the block are not part of it.
        assert_eq!(run(&[0x01, 0x20, 0x01, 0x2F, 0x2F]), Ok(vec![0x20, 0x01]));
    }

    #[test]
    fn unknown_block_type_and_short_block_are_errors() {
        assert_eq!(
            run(&[0x02, 0x00, 0xE3]),
            Err(StepError::Invalid {
                step: "gwf_status_block",
                offset: 0,
                reason: "manufacturer block type 0x02 is not known (only 0x01 is)".into(),
            })
        );
        assert_eq!(
            run(&[0x01, 0x00]),
            Err(StepError::TooShort {
                step: "gwf_status_block",
                len: 2,
                need: 3,
            })
        );
    }
}
