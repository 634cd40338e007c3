package imap

import (
	"strings"
	"unicode"
)

// baseSubject extracts the base subject of RFC 5256 section 2.1 from a
// Subject field's raw value, and tells whether the extraction removed a
// reply or forward marker (REFERENCES step 5 needs that).
func baseSubject(raw string) (string, bool) {
	// (1) Decode encoded words; every run of white space becomes one space.
	s := collapseWSP(decodeWords(raw))
	refwd := false
	for {
		// (2) Remove trailing "(fwd)" and white space, as often as they occur.
		for {
			if strings.HasSuffix(s, " ") {
				s = s[:len(s)-1]
			} else if n := len(s); n >= 5 && strings.EqualFold(s[n-5:], "(fwd)") {
				s = s[:n-5]
				refwd = true
			} else {
				break
			}
		}
		// (3) and (4), repeated (5) until neither removes anything.
		for {
			n, isRefwd := subjLeader(s)
			if n > 0 {
				s = s[n:]
				refwd = refwd || isRefwd
				continue
			}
			if n := subjBlob(s); n > 0 && n < len(s) {
				s = s[n:]
				continue
			}
			break
		}
		// (6) "[fwd: ...]" around the whole rest: unwrap and start again.
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			refwd = true
			continue
		}
		return s, refwd
	}
}

// collapseWSP turns every run of tabs, spaces and line breaks into one
// space.
func collapseWSP(s string) string {
	var sb strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n':
			if !space {
				sb.WriteByte(' ')
			}
			space = true
		default:
			sb.WriteByte(c)
			space = false
		}
	}
	return sb.String()
}

// subjBlob returns the length of the subj-blob at the start of s
// ("[" *BLOBCHAR "]" *WSP), 0 if there is none.
func subjBlob(s string) int {
	if s == "" || s[0] != '[' {
		return 0
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return 0
	}
	n := end + 2
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return n
}

// subjLeader returns the length of the subj-leader at the start of s
// ((*subj-blob subj-refwd) / WSP), 0 if there is none, and whether it
// was a subj-refwd.
func subjLeader(s string) (int, bool) {
	if s != "" && s[0] == ' ' {
		return 1, false
	}
	i := 0
	for {
		n := subjBlob(s[i:])
		if n == 0 {
			break
		}
		i += n
	}
	// subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
	rest := s[i:]
	switch {
	case hasPrefixFold(rest, "re"):
		i += 2
	case hasPrefixFold(rest, "fwd"):
		i += 3
	case hasPrefixFold(rest, "fw"):
		i += 2
	default:
		return 0, false
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	i += subjBlob(s[i:])
	if i < len(s) && s[i] == ':' {
		return i + 1, true
	}
	return 0, false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// casemap folds s for the i;unicode-casemap comparator (RFC 5051): each
// character to its title case. The NFKD decomposition step is left out,
// so precomposed and decomposed forms of one letter compare unequal.
func casemap(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('a' <= c && c <= 'z') {
			return strings.Map(unicode.ToTitle, s)
		}
	}
	return s
}
