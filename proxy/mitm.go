package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files of the MITM certificate authority in --mitm-ca DIR.
const (
	CACertFile = "loadtape-ca.pem"     // the certificate clients must trust
	CAKeyFile  = "loadtape-ca-key.pem" // its private key, mode 0600
)

// CA is the certificate authority that signs a certificate per host when
// the forward proxy intercepts HTTPS.
type CA struct {
	Cert     tls.Certificate
	CertFile string // path of the PEM certificate to hand to clients
}

// LoadOrCreateCA loads the CA kept in dir, making dir (0700) and a new CA
// (ECDSA P-256, ten years) on first use. The key file is written 0600 and a
// key file readable by others is refused.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, cerr := os.Stat(certPath)
	_, kerr := os.Stat(keyPath)
	switch {
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
		if err := createCA(dir, certPath, keyPath); err != nil {
			return nil, fmt.Errorf("mitm-ca %s: %w", dir, err)
		}
	case cerr != nil:
		return nil, fmt.Errorf("mitm-ca %s: %w", dir, cerr)
	case kerr != nil:
		return nil, fmt.Errorf("mitm-ca %s: certificate without key: %w", dir, kerr)
	}
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mitm-ca %s: key file %s is mode %v; want 0600 (chmod 600 it)", dir, keyPath, st.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("mitm-ca %s: %w", dir, err)
	}
	cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("mitm-ca %s: %w", dir, err)
	}
	return &CA{Cert: cert, CertFile: certPath}, nil
}

func createCA(dir, certPath, keyPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "loadtape record MITM CA", Organization: []string{"loadtape"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key first, exclusively: two recorders starting at once must not
	// end with a certificate that does not match the key.
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(kf, &pem.Block{Type: "PRIVATE KEY", Bytes: kder}); err != nil {
		kf.Close()
		return err
	}
	if err := kf.Close(); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// certStore caches the per-host certificates: signing costs milliseconds.
type certStore struct {
	mu    sync.Mutex
	certs map[string]*tls.Certificate
}

func newCertStore() *certStore { return &certStore{certs: map[string]*tls.Certificate{}} }

func (s *certStore) Fetch(host string, gen func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.certs[host]; ok {
		return c, nil
	}
	c, err := gen()
	if err != nil {
		return nil, err
	}
	s.certs[host] = c
	return c, nil
}
