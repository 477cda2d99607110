// Package efivar encodes the UEFI Secure Boot variables that enrol a
// platform's keys: EFI_SIGNATURE_LISTs of X.509 certificates (the .esl
// files) and time-based authenticated variable updates,
// EFI_VARIABLE_AUTHENTICATION_2 followed by the new value (the .auth
// files that firmware, or systemd-boot's enrolment, writes to PK, KEK
// and db). Bytes in, bytes out; it reads no file and no clock.
//
// It owns the byte layouts and the detached PKCS#7 signature of an
// update; Verify checks such an update against a certificate, as
// firmware does. It does not own key generation, certificates' contents
// or file names: `kiln keys generate` does.
//
// # As efitools writes them
//
// SignatureList writes what `cert-to-efi-sig-list -g OWNER CERT` writes:
// one EFI_SIGNATURE_LIST per certificate, of type EFI_CERT_X509_GUID,
// SignatureHeaderSize 0, SignatureSize 16 + len(DER), a single
// EFI_SIGNATURE_DATA (the owner GUID, then the DER certificate).
//
// AuthVariable writes what `sign-efi-sig-list -t TIME -k KEY -c CERT VAR
// ESL` (efitools 1.9) writes, byte for byte: the EFI_TIME, a
// WIN_CERTIFICATE_UEFI_GUID of type EFI_CERT_TYPE_PKCS7_GUID holding a
// DER PKCS#7 SignedData (the SignedData itself, without the ContentInfo
// around it, as UEFI 2.x section 8.2.2 asks), then the data. The
// SignedData is detached (its content is the type data with no value),
// sha256, with the signer's certificate and no signed attributes, so the
// RSA PKCS#1 v1.5 signature is over sha256 of
//
//	VariableName (UTF-16LE, no NUL) || VendorGuid || Attributes (u32 LE) || TimeStamp || data
//
// # Determinism
//
// The timestamp is a parameter: `kiln keys generate` passes the epoch
// (--epoch or SOURCE_DATE_EPOCH), never the clock. It is written in UTC
// with Nanosecond, TimeZone and Daylight zero, as UEFI requires of an
// authenticated variable's timestamp. RSA PKCS#1 v1.5 signatures have no
// random input, so the same key, certificate, timestamp and data give
// the same bytes. Firmware accepts a first enrolment (setup mode, or a
// variable that does not exist) whatever its timestamp; a later update
// of the same variable must carry a later one.
package efivar
