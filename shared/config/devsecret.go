package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultDevDir is where development secrets live (JWT signing key, master
// key), shared by every local function started from the repository root.
const DefaultDevDir = ".dev/keys"

// DevSecret returns the development secret dir/name, generating it on first
// use. Functions that start at once race to create it: the first hard link
// wins and all of them read that file. Never used outside development.
func DevSecret(dir, name string, generate func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev secret dir: %w", err)
	}
	b, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("dev secret %s: %w", name, err)
	}
	return os.ReadFile(path)
}
