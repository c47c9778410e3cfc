//! TFRecord framing, the container of TensorBoard's event files. Each record is
//!
//! ```text
//! length (u64, little-endian) · masked CRC32C of those 8 bytes · data · masked CRC32C of the data
//! ```
//!
//! The CRCs are CRC32C (Castagnoli), masked as TensorFlow masks them, so that a CRC of data that
//! itself holds CRCs does not collide with them. Readers check both CRCs and drop what fails.

/// The Castagnoli polynomial, bit-reversed (the CRC is computed least significant bit first).
const CASTAGNOLI_REFLECTED: u32 = 0x82F6_3B78;

/// What TensorFlow adds to a rotated CRC to mask it.
const CRC_MASK_DELTA: u32 = 0xA282_EAD8;

/// The CRC of every byte value, for a byte-at-a-time CRC.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CASTAGNOLI_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// CRC32C (Castagnoli) of `bytes`, as iSCSI, ext4 and TensorFlow compute it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// The CRC32C of `bytes` as TFRecord stores it: `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Appends `data` to `out` as one TFRecord.
pub fn append_record(out: &mut Vec<u8>, data: &[u8]) {
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_test_vectors() {
        // The "check" value of the CRC catalogue, and the vectors of RFC 3720 (iSCSI), B.4.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113F_DB5C);
    }

    #[test]
    fn masking_rotates_then_adds_the_delta() {
        // 0xE3069283 rotated right by 15 bits is 0x2507C60D; plus 0xA282EAD8, 0xC78AB0E5
        // (wrapping).
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        // An empty input's CRC is 0, so its masked CRC is the delta alone.
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let mut out = Vec::new();
        append_record(&mut out, b"hello");
        append_record(&mut out, b"");
        assert_eq!(out.len(), (8 + 4 + 5 + 4) + (8 + 4 + 4));
        assert_eq!(&out[..8], &5u64.to_le_bytes());
        assert_eq!(
            &out[8..12],
            &masked_crc32c(&5u64.to_le_bytes()).to_le_bytes()
        );
        assert_eq!(&out[12..17], b"hello");
        assert_eq!(&out[17..21], &masked_crc32c(b"hello").to_le_bytes());
        assert_eq!(&out[21..29], &0u64.to_le_bytes());
        assert_eq!(&out[33..], &masked_crc32c(b"").to_le_bytes());
    }
}
