// Package sign makes and checks Authenticode signatures of PE/COFF images
// (UEFI applications: the UKI, systemd-boot, a kernel's EFI stub) for
// Secure Boot, in Go, with no external program: bytes in, bytes out.
//
// It owns the image hash (AuthenticodeDigest, as the PE/COFF
// specification defines it), the PKCS#7 SignedData with its
// SpcIndirectDataContent, the WIN_CERTIFICATE appended to the image with
// its alignment, the Certificate Table entry and the PE checksum; and
// Verify, which checks a signature against db certificates as firmware
// does. It does not own where the PEs are, which are signed, the keys'
// files or the signing request's format: the build does.
//
// # Determinism
//
// Signing the same image with the same key and certificate gives the same
// bytes. The signed attributes are contentType, SpcSpOpusInfo (empty),
// SpcStatementType (individual code signing) and messageDigest, in DER
// order; a signingTime only when Options.SigningTime is set (the build's
// epoch, never the clock). sbsign always adds the current time and
// S/MIME capabilities; osslsigncode adds the time unless given -time.
// The signature is RSA PKCS#1 v1.5 with sha256, which has no random input.
// The image is first padded with zeros to 8 bytes and any previous
// signature removed (replaced, not added to); the padding is hashed, as
// sbsign and osslsigncode do.
//
// # Hash-only signing
//
// Sign is Prepare, then the key's signature of Request.Digest, then
// Complete. The key may be any crypto.Signer, or live elsewhere: Prepare
// returns the DER signed attributes and Request.Digest, their sha256,
// which is exactly what
//
//	openssl pkeyutl -sign -inkey db.key -pkeyopt digest:sha256 -in digest.bin -out sig.bin
//
// signs (an HSM signs the same sha256 DigestInfo). Complete takes that
// signature, checks it against the certificate's key and returns the
// signed image, bit-identical to Sign's with the same key. Because
// Prepare is deterministic, a build can write the digests, stop, and
// after they are signed on another machine rebuild and Complete.
//
// # Reading signatures
//
// Signatures reads every signature of a PE signed by anyone: each
// WIN_CERTIFICATE entry of the certificate table (Microsoft's dual-signed
// shim has two) and the signatures nested in each (the nested-signature
// attribute, 1.3.6.1.4.1.311.2.4.1), with the signer, the chain of
// certificates the signature carries, the image hash's algorithm, and
// whether it is valid (the image hash matches, the messageDigest matches,
// the signature verifies with the signer's certificate) or why not.
// SignatureInfo.Trusted then asks whether a chain reaches given db
// certificates. Verify stays the firmware's view of kiln's own
// signatures: one signature, sha256, trusted.
//
// Keys are RSA of 2048 to 4096 bits; every header field of the PE is
// bounded against the file before it is used, and errors name the field.
package sign
