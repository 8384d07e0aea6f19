// Package auth owns API authentication: bearer tokens from a token file, each
// with a role. It knows nothing of HTTP routing; the API server asks it who a
// token belongs to and what that role may do.
package auth

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Role is what a token may do.
type Role string

// Roles.
const (
	// RoleAdmin reads and writes everything.
	RoleAdmin Role = "admin"
	// RoleRead reads everything but secret data, and writes nothing.
	RoleRead Role = "read"
)

// Identity is who a request comes from.
type Identity struct {
	Name string
	Role Role
}

// CanWrite says whether the identity may change state.
func (id Identity) CanWrite() bool { return id.Role == RoleAdmin }

// Anonymous is the identity of every request when no tokens are configured.
var Anonymous = Identity{Name: "anonymous", Role: RoleAdmin}

// MinTokenLength is the shortest token a token file may hold.
const MinTokenLength = 16

// ErrUnknownToken says a token is not in the token file.
var ErrUnknownToken = errors.New("unknown token")

// Tokens maps bearer tokens to identities. Tokens are kept as SHA-256 hashes
// so that a lookup's timing does not depend on how much of a guess matched.
type Tokens struct {
	byHash map[[32]byte]Identity
}

// LoadFile reads a token file: one token per line as "token,role[,name]",
// role admin or read; blank lines and lines starting with # are skipped.
func LoadFile(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: token file: %w", err)
	}
	defer f.Close()
	t := &Tokens{byHash: map[[32]byte]Identity{}}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		parts := strings.Split(text, ",")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("auth: %s:%d: want token,role[,name]", path, line)
		}
		token, role := strings.TrimSpace(parts[0]), Role(strings.TrimSpace(parts[1]))
		if len(token) < MinTokenLength {
			return nil, fmt.Errorf("auth: %s:%d: token is shorter than %d characters", path, line, MinTokenLength)
		}
		if role != RoleAdmin && role != RoleRead {
			return nil, fmt.Errorf("auth: %s:%d: role %q is not admin or read", path, line, role)
		}
		name := fmt.Sprintf("token-line-%d", line)
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			name = strings.TrimSpace(parts[2])
		}
		h := sha256.Sum256([]byte(token))
		if _, dup := t.byHash[h]; dup {
			return nil, fmt.Errorf("auth: %s:%d: duplicate token", path, line)
		}
		t.byHash[h] = Identity{Name: name, Role: role}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: token file %s: %w", path, err)
	}
	if len(t.byHash) == 0 {
		return nil, fmt.Errorf("auth: token file %s holds no token", path)
	}
	return t, nil
}

// Lookup returns the identity of a token.
func (t *Tokens) Lookup(token string) (Identity, error) {
	id, ok := t.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Identity{}, ErrUnknownToken
	}
	return id, nil
}
