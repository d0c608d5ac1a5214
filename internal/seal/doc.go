// Package seal encrypts the secrets a node keeps in its store (the auth key
// ring, the VAPID key pair) under the operator's master key, in one format:
// Prefix, a 12-byte random nonce, then the AES-256-GCM ciphertext and tag.
// The secret's name is authenticated alongside, so a sealed value copied to
// another name does not open.
package seal
