package gateway

import "crypto/tls"

// TLSConfig returns the server TLS configuration for --tls-cert/--tls-key:
// TLS 1.2 at least, everything else at Go's defaults on purpose, so that
// they improve with each Go release without a change here. With Go 1.26
// those are: for TLS 1.2, ECDHE key exchange only (RSA key exchange is off
// since Go 1.22, 3DES since 1.23, RC4 and CBC-SHA256 always), AES-GCM and
// ChaCha20-Poly1305 first, then ECDHE AES-CBC-SHA for old clients; TLS 1.3
// suites are fixed and all AEAD; key exchange prefers the hybrid
// post-quantum X25519MLKEM768. The caller sets Certificates (or
// GetCertificate); http.Server adds "h2" to NextProtos itself.
func TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12}
}
