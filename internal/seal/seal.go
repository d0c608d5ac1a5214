package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// Prefix starts every sealed value; a stored value without it is in the
// clear (written before a master key was set).
const Prefix = "tern-sealed-v1:"

// IsSealed reports whether a stored value is sealed.
func IsSealed(blob []byte) bool { return bytes.HasPrefix(blob, []byte(Prefix)) }

// Seal encrypts plain under master (32 bytes) for the secret called name.
func Seal(master []byte, name string, plain []byte) ([]byte, error) {
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	return aead.Seal([]byte(Prefix), nil, plain, []byte(name)), nil
}

// Open decrypts what Seal made for the same name under the same key.
func Open(master []byte, name string, blob []byte) ([]byte, error) {
	if !IsSealed(blob) {
		return nil, errors.New("seal: the value is not sealed")
	}
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, blob[len(Prefix):], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("seal: the sealed secret %s does not open with this master key: %w", name, err)
	}
	return plain, nil
}

func masterAEAD(master []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	// A random nonce per sealing: a secret is sealed a handful of times in
	// its life, far below the 2^32 messages a random 96-bit nonce allows.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	return aead, nil
}
