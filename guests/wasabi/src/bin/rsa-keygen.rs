//! One RSA key pair (default 2048 bits; the parameter sets the bits), its private key exported
//! as PKCS#8 DER and its public key as SPKI DER, both in base64. The key's randomness comes from
//! the host (WASI `random_get`), as a key's must: this is the one function whose work varies.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use wasabi_guests::{fail, report, size};

fn main() {
    let bits = usize::try_from(size(2048)).unwrap_or_else(|_| fail("too many bits"));
    let private =
        RsaPrivateKey::new(&mut OsRng, bits).unwrap_or_else(|e| fail(&format!("generating the key: {e}")));
    let public = RsaPublicKey::from(&private);
    let private_der = private.to_pkcs8_der().unwrap_or_else(|e| fail(&format!("PKCS#8: {e}")));
    let public_der = public.to_public_key_der().unwrap_or_else(|e| fail(&format!("SPKI: {e}")));
    let private_b64 = STANDARD.encode(private_der.as_bytes());
    let public_b64 = STANDARD.encode(public_der.as_bytes());
    report(&format!(
        "RSA Executed: {bits}-bit key pair generated, PKCS#8 private key {} base64 characters, \
         public key {} base64 characters",
        private_b64.len(),
        public_b64.len()
    ));
}
