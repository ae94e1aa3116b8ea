// Package devoutbox is where development writes what production would send
// through a provider (SMS, e-mail): one JSON object per line in a file a
// developer (or a test) reads. Each message is one O_APPEND write, so
// concurrent writers never interleave. It is never used in production.
package devoutbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Append writes v as one JSON line to the file at path, creating it (0600)
// and its directory as needed.
func Append(path string, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode outbox message: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create outbox dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open outbox: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("append to outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close outbox: %w", err)
	}
	return nil
}
