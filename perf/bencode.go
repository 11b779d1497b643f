package perf

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Bencode, the encoding of rtpengine's ng control protocol (BitTorrent's
// format): byte strings "4:spam", integers "i42e", lists "l...e" and
// dictionaries "d...e" with byte-string keys in sorted order.

// ErrBencode is wrapped by every decoding error.
var ErrBencode = errors.New("malformed bencode")

// maxBencodeDepth bounds nesting so hostile input cannot exhaust the stack.
const maxBencodeDepth = 64

// BencodeMarshal encodes strings, []byte, ints, []any, []string and
// map[string]any.
func BencodeMarshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := bencodeTo(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func bencodeTo(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.WriteString(x)
	case []byte:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.Write(x)
	case int:
		fmt.Fprintf(b, "i%de", x)
	case int64:
		fmt.Fprintf(b, "i%de", x)
	case []string:
		b.WriteByte('l')
		for _, s := range x {
			_ = bencodeTo(b, s)
		}
		b.WriteByte('e')
	case []any:
		b.WriteByte('l')
		for _, e := range x {
			if err := bencodeTo(b, e); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('d')
		for _, k := range keys {
			_ = bencodeTo(b, k)
			if err := bencodeTo(b, x[k]); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		b.WriteByte('e')
	default:
		return fmt.Errorf("bencode %T: unsupported type", v)
	}
	return nil
}

// BencodeUnmarshal decodes one value that must span all of data. Strings
// decode as string, integers as int64, lists as []any, dictionaries as
// map[string]any.
func BencodeUnmarshal(data []byte) (any, error) {
	v, n, err := bdecode(data, 0)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%d trailing bytes: %w", len(data)-n, ErrBencode)
	}
	return v, nil
}

func bdecode(d []byte, depth int) (any, int, error) {
	if depth > maxBencodeDepth {
		return nil, 0, fmt.Errorf("nested deeper than %d: %w", maxBencodeDepth, ErrBencode)
	}
	if len(d) == 0 {
		return nil, 0, fmt.Errorf("unexpected end: %w", ErrBencode)
	}
	switch c := d[0]; {
	case c == 'i':
		end := bytes.IndexByte(d, 'e')
		if end < 2 {
			return nil, 0, fmt.Errorf("integer without end: %w", ErrBencode)
		}
		n, err := strconv.ParseInt(string(d[1:end]), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("integer %q: %w", d[1:end], ErrBencode)
		}
		return n, end + 1, nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(d, ':')
		if colon < 1 || colon > 10 {
			return nil, 0, fmt.Errorf("string length: %w", ErrBencode)
		}
		n, err := strconv.Atoi(string(d[:colon]))
		if err != nil || n < 0 || n > len(d)-colon-1 {
			return nil, 0, fmt.Errorf("string length %q: %w", d[:colon], ErrBencode)
		}
		return string(d[colon+1 : colon+1+n]), colon + 1 + n, nil
	case c == 'l':
		list := []any{}
		i := 1
		for {
			if i >= len(d) {
				return nil, 0, fmt.Errorf("list without end: %w", ErrBencode)
			}
			if d[i] == 'e' {
				return list, i + 1, nil
			}
			v, n, err := bdecode(d[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			list = append(list, v)
			i += n
		}
	case c == 'd':
		dict := map[string]any{}
		i := 1
		for {
			if i >= len(d) {
				return nil, 0, fmt.Errorf("dictionary without end: %w", ErrBencode)
			}
			if d[i] == 'e' {
				return dict, i + 1, nil
			}
			k, n, err := bdecode(d[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, 0, fmt.Errorf("dictionary key is not a string: %w", ErrBencode)
			}
			i += n
			v, n, err := bdecode(d[i:], depth+1)
			if err != nil {
				return nil, 0, err
			}
			dict[ks] = v
			i += n
		}
	default:
		return nil, 0, fmt.Errorf("unexpected byte %q: %w", c, ErrBencode)
	}
}
