package node

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// Secrets the node keeps in the store itself (the VAPID key pair) are
// sealed under the master key as auth seals its key ring, in the same
// format: sealPrefix, a 12-byte random nonce, then the AES-256-GCM
// ciphertext and tag, with the secret's name authenticated alongside so
// that a sealed value moved to another name does not open.
const (
	sealPrefix = "tern-sealed-v1:"
	// sealTries bounds the rereads when other nodes change a secret while
	// this one seals it.
	sealTries = 5
)

func seal(master []byte, name string, plain []byte) ([]byte, error) {
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	return aead.Seal([]byte(sealPrefix), nil, plain, []byte(name)), nil
}

func unseal(master []byte, name string, blob []byte) ([]byte, error) {
	aead, err := masterAEAD(master)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, blob[len(sealPrefix):], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("node: the sealed secret %s does not open with this master key: %w", name, err)
	}
	return plain, nil
}

func masterAEAD(master []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("node: master key: %w", err)
	}
	// A random nonce per sealing: a secret is sealed once in its life.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("node: master key: %w", err)
	}
	return aead, nil
}
