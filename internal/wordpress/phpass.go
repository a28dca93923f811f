package wordpress

import (
	"crypto/md5"
	"crypto/subtle"
	"fmt"
	"io"
	"strings"
)

// itoa64 is phpass's base-64 alphabet.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// PortableMinLog2 is the least iteration count (as a power of two) that
// WordPress's phpass accepts in a portable hash: 2^7 = 128 rounds of MD5.
const PortableMinLog2 = 7

// PortableHash returns the phpass "portable" hash ($P$) of password with
// 2^log2 rounds (PortableMinLog2..30) and a salt of 6 bytes from rnd: the
// format WordPress itself writes (wp_hash_password, with 2^13 rounds) and
// checks in wp_check_password, in every version (6.8 and later rehash it
// to bcrypt at the next sign-in).
//
// Its cost is for guessable passwords. A generated password of 24
// characters from 62 has about 143 bits of entropy, which no number of
// rounds makes more or less guessable; the control plane hashes those with
// the minimum, about 30 µs instead of bcrypt's 1.4 ms at its least cost.
func PortableHash(password string, log2 int, rnd io.Reader) (string, error) {
	if log2 < PortableMinLog2 || log2 > 30 {
		return "", fmt.Errorf("phpass: rounds 2^%d out of 2^%d..2^30", log2, PortableMinLog2)
	}
	raw := make([]byte, 6)
	if _, err := io.ReadFull(rnd, raw); err != nil {
		return "", fmt.Errorf("phpass: salt: %w", err)
	}
	setting := "$P$" + string(itoa64[log2]) + encode64(raw)
	return setting + encode64(portableSum(password, setting[4:12], 1<<log2)), nil
}

// CheckPortable reports whether hash is a phpass portable hash of
// password, as WordPress's PasswordHash::CheckPassword decides it.
func CheckPortable(password, hash string) bool {
	if len(hash) != 34 || (!strings.HasPrefix(hash, "$P$") && !strings.HasPrefix(hash, "$H$")) {
		return false
	}
	log2 := strings.IndexByte(itoa64, hash[3])
	if log2 < PortableMinLog2 || log2 > 30 {
		return false
	}
	want := hash[:12] + encode64(portableSum(password, hash[4:12], 1<<log2))
	return subtle.ConstantTimeCompare([]byte(want), []byte(hash)) == 1
}

// portableSum is phpass's crypt_private loop: md5(salt.password), then
// count times md5(sum.password).
func portableSum(password, salt string, count int) []byte {
	sum := md5.Sum([]byte(salt + password))
	buf := make([]byte, 0, md5.Size+len(password))
	for range count {
		buf = append(append(buf[:0], sum[:]...), password...)
		sum = md5.Sum(buf)
	}
	return sum[:]
}

// encode64 is phpass's encode64: little-endian groups of 3 bytes, 6 bits a
// character.
func encode64(in []byte) string {
	var out strings.Builder
	for i := 0; i < len(in); {
		v := uint32(in[i])
		i++
		out.WriteByte(itoa64[v&0x3f])
		if i < len(in) {
			v |= uint32(in[i]) << 8
		}
		out.WriteByte(itoa64[(v>>6)&0x3f])
		if i >= len(in) {
			break
		}
		i++
		if i < len(in) {
			v |= uint32(in[i]) << 16
		}
		out.WriteByte(itoa64[(v>>12)&0x3f])
		if i >= len(in) {
			break
		}
		i++
		out.WriteByte(itoa64[(v>>18)&0x3f])
	}
	return out.String()
}
