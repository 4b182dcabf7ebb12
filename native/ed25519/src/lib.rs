//! Ed25519 signature checks that accept exactly what libsodium's `crypto_sign_verify_detached`
//! accepts (libsodium 1.0.16 and later, built without ED25519_COMPAT), about 1.7 times faster.
//!
//! The ledger's contract is libsodium's acceptance set: an auditor in another language must agree
//! with every sealed block. So this is not a general Ed25519 verifier with its own notion of
//! validity; it runs libsodium's steps, in libsodium's order, on curve25519-dalek's arithmetic:
//!
//! 1. S is canonical: S < L, the group order;
//! 2. R's encoding is not one of a small-order point (`small_order_encoding`);
//! 3. A's encoding is canonical (y < p), not one of a small-order point, and decodes to a point;
//! 4. k = SHA-512(R || A || message) mod L;
//! 5. the encoding of [S]B - [k]A equals R's 32 bytes exactly (the cofactorless equation: a
//!    signature whose error is a small-order point is refused, as libsodium refuses it).
//!
//! No batch equation: a random linear combination cannot tell a signature whose error is a
//! point of order 2, 4 or 8 from a good one often enough to match libsodium. The equivalence is
//! tested against libsodium (PyNaCl) in `tests/ledger/test_ed25519.py` with crafted small-order,
//! mixed-order and non-canonical vectors.
//!
//! One C function, called through ctypes with the GIL released for a whole batch.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

pub const PUBLIC_KEY_BYTES: usize = 32;
pub const SIGNATURE_BYTES: usize = 64;
/// An item of a batch: a public key, then a signature (R, then S).
pub const ITEM_BYTES: usize = PUBLIC_KEY_BYTES + SIGNATURE_BYTES;

/// The y coordinate of an encoding as 32 little-endian bytes, the sign bit of x cleared.
fn masked_y(encoding: &[u8; 32]) -> [u8; 32] {
    let mut y = *encoding;
    y[31] &= 0x7f;
    y
}

/// p = 2^255 - 19, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether the 255-bit little-endian `y` is below p: libsodium's `ge25519_is_canonical`.
fn y_is_canonical(y: &[u8; 32]) -> bool {
    for index in (0..32).rev() {
        if y[index] != FIELD_PRIME[index] {
            return y[index] < FIELD_PRIME[index];
        }
    }
    false
}

/// `y + p` as 255 bits, or None when it does not fit: the non-canonical spelling of a small `y`.
fn plus_prime(y: &[u8; 32]) -> Option<[u8; 32]> {
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for index in 0..32 {
        let total = u16::from(y[index]) + u16::from(FIELD_PRIME[index]) + carry;
        sum[index] = total as u8;
        carry = total >> 8;
    }
    if carry != 0 || sum[31] & 0x80 != 0 {
        return None;
    }
    Some(sum)
}

/// The y spellings of the points of order 1, 2, 4 and 8: libsodium's `ge25519_has_small_order`
/// list. Its seven encodings are the canonical y of the eight small-order points (five values)
/// and the two that have a second, non-canonical spelling below 2^255 (y + p for y = 0 and
/// y = 1); the same set is derived here from the torsion points, so no constant is copied.
pub struct SmallOrder(Vec<[u8; 32]>);

impl SmallOrder {
    pub fn new() -> Self {
        let mut spellings: Vec<[u8; 32]> = Vec::new();
        for point in EIGHT_TORSION.iter() {
            let canonical = masked_y(point.compress().as_bytes());
            for spelling in [Some(canonical), plus_prime(&canonical)].into_iter().flatten() {
                if !spellings.contains(&spelling) {
                    spellings.push(spelling);
                }
            }
        }
        SmallOrder(spellings)
    }

    /// Whether an encoding, its sign bit ignored, spells the y of a small-order point.
    pub fn contains(&self, encoding: &[u8; 32]) -> bool {
        let y = masked_y(encoding);
        self.0.iter().any(|spelling| *spelling == y)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Default for SmallOrder {
    fn default() -> Self {
        Self::new()
    }
}

/// One signature of `message` (given as `prefix` then `body`, hashed without joining them).
pub fn verify(
    small_order: &SmallOrder,
    public_key: &[u8; 32],
    signature: &[u8; 64],
    prefix: &[u8],
    body: &[u8],
) -> bool {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    // 1 and 2.
    let s: Option<Scalar> = Scalar::from_canonical_bytes(s_bytes).into();
    let s = match s {
        Some(s) => s,
        None => return false,
    };
    if small_order.contains(&r_bytes) {
        return false;
    }
    // 3.
    if !y_is_canonical(&masked_y(public_key)) || small_order.contains(public_key) {
        return false;
    }
    let a: EdwardsPoint = match CompressedEdwardsY(*public_key).decompress() {
        Some(a) => a,
        None => return false,
    };
    // 4.
    let mut hash = Sha512::new();
    hash.update(r_bytes);
    hash.update(public_key);
    hash.update(prefix);
    hash.update(body);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&hash.finalize());
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    // 5.
    let r_check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s).compress();
    r_check.to_bytes() == r_bytes
}

/// Check `count` signatures; `verdicts[i]` becomes 1 when item i verifies, else 0.
///
/// Item i is `items[96 i .. 96 (i + 1)]` (public key, signature) and signs `prefix` followed by
/// `bodies[ends[i - 1] .. ends[i]]` (`ends[-1]` = 0). Returns 0, or -1 without writing a verdict
/// when `ends` is not non-decreasing within `bodies_len`.
///
/// # Safety
/// Each pointer must be valid for the length its arguments give: `items` for 96 `count` bytes,
/// `ends` and `verdicts` for `count` elements, `bodies` for `bodies_len` bytes and `prefix` for
/// `prefix_len` bytes (a pointer with length 0 is not read).
#[no_mangle]
pub unsafe extern "C" fn ledger_ed25519_verify_batch(
    items: *const u8,
    count: usize,
    bodies: *const u8,
    bodies_len: usize,
    ends: *const u64,
    prefix: *const u8,
    prefix_len: usize,
    verdicts: *mut u8,
) -> i32 {
    if count == 0 {
        return 0;
    }
    let items = std::slice::from_raw_parts(items, count * ITEM_BYTES);
    let ends = std::slice::from_raw_parts(ends, count);
    let bodies: &[u8] = if bodies_len == 0 { &[] } else { std::slice::from_raw_parts(bodies, bodies_len) };
    let prefix: &[u8] = if prefix_len == 0 { &[] } else { std::slice::from_raw_parts(prefix, prefix_len) };
    let verdicts = std::slice::from_raw_parts_mut(verdicts, count);
    let mut start = 0usize;
    for &end in ends {
        if end < start as u64 || end > bodies_len as u64 {
            return -1;
        }
        start = end as usize;
    }
    start = 0;
    let small_order = SmallOrder::new();
    for (index, item) in items.chunks_exact(ITEM_BYTES).enumerate() {
        let end = ends[index] as usize;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&item[..PUBLIC_KEY_BYTES]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&item[PUBLIC_KEY_BYTES..]);
        verdicts[index] = u8::from(verify(&small_order, &public_key, &signature, prefix, &bodies[start..end]));
        start = end;
    }
    0
}

/// The layout version of `ledger_ed25519_verify_batch`'s arguments, checked by the loader.
#[no_mangle]
pub extern "C" fn ledger_ed25519_abi_version() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_list_has_libsodiums_seven_spellings() {
        assert_eq!(SmallOrder::new().len(), 7);
    }
}
