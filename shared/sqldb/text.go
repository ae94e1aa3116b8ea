package sqldb

import "strings"

// Text is s as a utf8mb4 VARCHAR(n) column takes it: what is not UTF-8
// (a client's User-Agent, a provider's error page may hold any bytes, and
// the column refuses them, failing the whole statement) replaced with
// U+FFFD, and cut to at most n characters (a longer value is refused in
// strict mode).
func Text(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n { // n bytes are at most n characters
		return s
	}
	chars := 0
	for i := range s {
		if chars == n {
			return s[:i]
		}
		chars++
	}
	return s
}
