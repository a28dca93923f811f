package password

import (
	"errors"
	"strings"
	"testing"
)

// fast are tiny parameters so the tests do not spend 19 MiB per hash.
var fast = Params{Memory: 64, Time: 1, Threads: 1}

func newFast(t *testing.T) *Hasher {
	t.Helper()
	h, err := New(fast)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	h := newFast(t)
	phc, err := h.Hash("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", phc)
	}
	again, _ := h.Hash("correct horse battery")
	if again == phc {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		name, pw string
		want     error
	}{
		{"right", "correct horse battery", nil},
		{"wrong", "correct horse batterx", ErrMismatch},
		{"empty", "", ErrMismatch},
		{"prefix", "correct horse", ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(phc, tc.pw); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVerifyReference checks a hash made by the reference implementation
// (libargon2 through PHP's password_hash, PASSWORD_ARGON2ID, m=1024 t=1 p=1):
// the PHC format and parameters are read as other tools write them.
func TestVerifyReference(t *testing.T) {
	const phc = "$argon2id$v=19$m=1024,t=1,p=1$d1dQOWNYdDF0eDRoM3N1ag$RkmVbm12bLs0t5L3UzrEuAenrfVqEuqoEUL3Y9HlRzQ"
	if err := Verify(phc, "correct horse battery"); err != nil {
		t.Fatalf("reference hash: %v", err)
	}
	if err := Verify(phc, "correct horse batterY"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("reference hash, wrong password: %v", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
	if _, _, _, err := Decode(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	for _, tc := range []struct{ name, phc string }{
		{"empty", ""},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuJ0x9sL0c5Kq9b8YpG2rj5s3CwG/9Xa"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1)},
		{"version", strings.Replace(good, "v=19", "v=16", 1)},
		{"no memory", strings.Replace(good, "m=64,", "", 1)},
		{"zero time", strings.Replace(good, "t=1", "t=0", 1)},
		{"huge memory", strings.Replace(good, "m=64", "m=99999999", 1)},
		{"threads over 255", strings.Replace(good, "p=1", "p=300", 1)},
		{"unknown param", strings.Replace(good, "p=1", "p=1,x=2", 1)},
		{"bad salt", strings.Replace(good, "c2FsdHNhbHRzYWx0", "!!", 1)},
		{"short hash", strings.Replace(good, "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", "aGFzaA", 1)},
		{"extra field", good + "$x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := Decode(tc.phc); !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode(%q) = %v, want ErrMalformed", tc.phc, err)
			}
			if err := Verify(tc.phc, "x"); !errors.Is(err, ErrMalformed) {
				t.Errorf("Verify = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	h := newFast(t)
	phc, _ := h.Hash("correct horse battery")
	if h.NeedsRehash(phc) {
		t.Error("own hash needs rehash")
	}
	stronger, err := New(Params{Memory: 128, Time: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !stronger.NeedsRehash(phc) {
		t.Error("hash with lower parameters does not need rehash")
	}
	// The old hash still verifies: parameters come from the string.
	if err := Verify(phc, "correct horse battery"); err != nil {
		t.Error(err)
	}
	if !h.NeedsRehash("garbage") {
		t.Error("malformed hash does not need rehash")
	}
}

func TestVerifyDummy(t *testing.T) {
	h := newFast(t)
	if err := h.VerifyDummy("aipress dummy password for unknown users"); !errors.Is(err, ErrMismatch) {
		t.Errorf("VerifyDummy with the dummy's own password = %v, want ErrMismatch", err)
	}
	if h.NeedsRehash(h.dummy) {
		t.Error("dummy hash not made with the hasher's parameters (unknown users would take another time)")
	}
}

func TestDefaults(t *testing.T) {
	h, err := New(Params{Memory: 64, Time: 1}) // threads and lengths default
	if err != nil {
		t.Fatal(err)
	}
	if p := h.Params(); p.Threads != 1 || p.SaltLen != 16 || p.KeyLen != 32 {
		t.Errorf("defaults: %+v", p)
	}
	if _, err := New(Params{Memory: 64, Time: 1, SaltLen: 4}); err == nil {
		t.Error("salt of 4 bytes accepted")
	}
}

func TestCheckPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, pw, email string
		ok              bool
	}{
		{"12 chars", "abcdefghijkl", "a@example.com", true},
		{"11 chars", "abcdefghijk", "a@example.com", false},
		{"12 runes, multibyte", "ééééééééééé1", "", true},
		{"1024", strings.Repeat("a", 1024), "", true},
		{"1025", strings.Repeat("a", 1025), "", false},
		{"email", "Alice@Example.com", "alice@example.com", false},
		{"email with spaces", " alice@example.com ", "alice@example.com", false},
		{"invalid utf8", "abcdefghijkl\xff", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicy(tc.pw, tc.email)
			if (err == nil) != tc.ok {
				t.Errorf("CheckPolicy = %v, want ok=%v", err, tc.ok)
			}
			var pe *PolicyError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("error %T is not a *PolicyError", err)
			}
		})
	}
}

// BenchmarkHashDefault prints the cost of one sign-in's hash with the
// default parameters (run with -bench; in make test it runs once).
func BenchmarkHashDefault(b *testing.B) {
	h, err := New(Params{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Hash("correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}
