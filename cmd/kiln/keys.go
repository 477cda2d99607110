package main

import (
	"context"
	"crypto/rand" // repro-ok: keys are secrets, generated once, never image bytes
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/efivar"
	"github.com/kiln-build/kiln/pkg/repro"
)

// keysOptions are the flags of `kiln keys generate`.
type keysOptions struct {
	epoch int64 // -1: not given
	owner string
	bits  int
	name  string
}

// certValidity is how long the generated certificates are valid from
// the epoch. UEFI firmware has no trusted clock and does not check
// validity dates (EDK2 verifies PKCS#7 with the time check off), but
// tools that check signed binaries on a host (sbverify, osslsigncode)
// do; ten years outlives the images signed with a key, and the epoch,
// not the clock, keeps the certificates reproducible from the keys.
const certValidity = 10

func newKeysCmd() *cobra.Command {
	o := keysOptions{epoch: -1}
	c := &cobra.Command{
		Use:   "keys",
		Short: "Make Secure Boot keys",
		Args:  argsUsage(cobra.NoArgs),
	}
	gen := &cobra.Command{
		Use:   "generate DIR",
		Short: "Write new PK, KEK and db keys, their certificates, and the signed lists (.auth) that enrol them",
		Long: `Writes into DIR (made if missing; existing files are never overwritten):
  PK.key KEK.key db.key     RSA private keys, PEM PKCS#8, mode 0600
  PK.crt KEK.crt db.crt     self-signed X.509 certificates, PEM, CN "<name> PK" etc.
  PK.esl KEK.esl db.esl     EFI signature lists, as cert-to-efi-sig-list writes them
  PK.auth KEK.auth db.auth  signed updates for enrolment, as sign-efi-sig-list
                            writes them: PK signed by PK, KEK by PK, db by KEK
The keys are random; everything else is determined by the keys, the
epoch (certificates' start and the updates' timestamp) and the owner.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if !c.Flags().Changed("epoch") {
				env, ok, err := repro.EpochFromEnv()
				if err != nil {
					return usageError{err}
				}
				if !ok {
					return usageError{errors.New("keys generate: give --epoch or SOURCE_DATE_EPOCH (the certificates' start and the .auth timestamp)")}
				}
				o.epoch = env
			}
			return runKeysGenerate(c.Context(), args[0], o, c.OutOrStdout())
		},
	}
	gen.Flags().Int64Var(&o.epoch, "epoch", -1, "seconds since 1970: the certificates' start and the .auth files' timestamp (default: SOURCE_DATE_EPOCH)")
	gen.Flags().StringVar(&o.owner, "owner", "", "the signature owner GUID in the lists (default: derived from --name)")
	gen.Flags().IntVar(&o.bits, "bits", 2048, "RSA key size: 2048, 3072 or 4096")
	gen.Flags().StringVar(&o.name, "name", "kiln", "the certificates' common name prefix")
	c.AddCommand(gen)
	return c
}

// keyFiles are the files `kiln keys generate` writes, in order.
var keyFiles = func() []string {
	var f []string
	for _, v := range []string{"PK", "KEK", "db"} {
		f = append(f, v+".key", v+".crt", v+".esl", v+".auth")
	}
	return f
}()

func runKeysGenerate(ctx context.Context, dir string, o keysOptions, stdout io.Writer) error {
	if o.bits != 2048 && o.bits != 3072 && o.bits != 4096 {
		return usageError{fmt.Errorf("keys generate: --bits %d: want 2048, 3072 or 4096", o.bits)}
	}
	if o.name == "" || strings.IndexFunc(o.name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 || len(o.name) > 64 {
		return usageError{fmt.Errorf("keys generate: --name %q: want 1 to 64 printable characters", o.name)}
	}
	if o.epoch < 0 || o.epoch > time.Date(9989, 1, 1, 0, 0, 0, 0, time.UTC).Unix() {
		return usageError{fmt.Errorf("keys generate: epoch %d: want 0 to the year 9988 (the certificates run 10 years)", o.epoch)}
	}
	epoch := time.Unix(o.epoch, 0).UTC()
	var owner efivar.GUID
	var err error
	if o.owner == "" {
		// The same name gives the same owner, so lists made again
		// with new keys keep their owner.
		owner, err = efivar.ParseGUID(repro.Derive(o.name, "secureboot/owner").String())
	} else {
		owner, err = efivar.ParseGUID(o.owner)
	}
	if err != nil {
		return usageError{fmt.Errorf("keys generate: --owner: %w", err)}
	}
	for _, f := range keyFiles {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("keys generate: %s exists; kiln never overwrites keys", filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keys generate: %w", err)
		}
	}

	files, err := makeKeys(ctx, o.bits, o.name, epoch, owner)
	if err != nil {
		return err
	}
	if err := writeKeyFiles(ctx, dir, files); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote PK, KEK and db keys, certificates, .esl and .auth files to %s (owner %s, timestamp %s)\n",
		dir, owner, epoch.Format(time.RFC3339))
	return nil
}

// keyPair is one generated key with its self-signed certificate.
type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// makeKeys generates the three keys and returns every file's bytes by
// name.
func makeKeys(ctx context.Context, bits int, name string, epoch time.Time, owner efivar.GUID) (map[string][]byte, error) {
	files := map[string][]byte{}
	pairs := map[string]*keyPair{}
	for _, v := range []string{"PK", "KEK", "db"} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("keys generate: %s key: %w", v, err)
		}
		cert, err := selfSigned(key, name+" "+v, epoch)
		if err != nil {
			return nil, fmt.Errorf("keys generate: %s certificate: %w", v, err)
		}
		pairs[v] = &keyPair{key, cert}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("keys generate: %s key: %w", v, err)
		}
		files[v+".key"] = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		files[v+".crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
		files[v+".esl"] = efivar.SignatureList(owner, cert.Raw)
	}
	for _, u := range []struct {
		name, signer string
		vendor       efivar.GUID
	}{{"PK", "PK", efivar.GlobalVariable}, {"KEK", "PK", efivar.GlobalVariable}, {"db", "KEK", efivar.ImageSecurityDatabase}} {
		s := pairs[u.signer]
		auth, err := efivar.AuthVariable(u.name, u.vendor, efivar.AuthAttributes, epoch, files[u.name+".esl"], s.key, s.cert)
		if err != nil {
			return nil, fmt.Errorf("keys generate: %s.auth: %w", u.name, err)
		}
		files[u.name+".auth"] = auth
	}
	return files, nil
}

// selfSigned returns key's self-signed certificate with common name cn,
// valid for certValidity years from epoch. Its serial number is taken
// from the sha256 of the public key, so the certificate depends on
// nothing but the key, the name and the epoch (RSA PKCS#1 v1.5
// signatures are deterministic). Like `openssl req -x509` (as efitools'
// and the usual guides make Secure Boot keys), each is a CA with no
// extended key usage, so it anchors a chain as well as it signs.
func selfSigned(key *rsa.PrivateKey, cn string, epoch time.Time) (*x509.Certificate, error) {
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki)
	sum[0] &= 0x7f // positive, at most 20 octets (RFC 5280)
	sum[0] |= 0x40 // and never shortened
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             epoch,
		NotAfter:              epoch.AddDate(certValidity, 0, 0),
		SignatureAlgorithm:    x509.SHA256WithRSA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          sum[16:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// writeKeyFiles writes files into dir, made if missing, each created
// anew (never over an existing file); keys are 0600, the rest 0644. On
// any failure or interruption it removes what it wrote, and dir if it
// made it.
func writeKeyFiles(ctx context.Context, dir string, files map[string][]byte) (err error) {
	madeDir := false
	if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("keys generate: %w", err)
		}
		madeDir = true
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range written {
			os.Remove(p)
		}
		if madeDir {
			os.Remove(dir)
		}
	}()
	for _, f := range keyFiles {
		if err := ctx.Err(); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".key") {
			mode = 0o600
		}
		p := filepath.Join(dir, f)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("keys generate: %s exists; kiln never overwrites keys", p)
			}
			return fmt.Errorf("keys generate: %w", err)
		}
		written = append(written, p)
		if err := fh.Chmod(mode); err != nil { // whatever the umask
			fh.Close()
			return fmt.Errorf("keys generate: %s: %w", p, err)
		}
		if _, err := fh.Write(files[f]); err != nil {
			fh.Close()
			return fmt.Errorf("keys generate: %s: %w", p, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("keys generate: %s: %w", p, err)
		}
	}
	return nil
}
