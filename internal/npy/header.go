package npy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// header is what a .npy header says about its array.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader reads a .npy header: a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, with the
// three keys and nothing else. Like numpy.load it takes any spacing, either
// quote, trailing commas or none, and the last of repeated keys.
func parseHeader(text []byte) (header, error) {
	p := &scanner{s: text}
	var h header
	seen := map[string]bool{}
	if !p.eat('{') {
		return h, errors.New("it is not a dict")
	}
	for !p.eat('}') {
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("key: %w", err)
		}
		if !p.eat(':') {
			return h, fmt.Errorf("no ':' after key %q", key)
		}
		switch key {
		case "descr":
			h.descr, err = p.str()
		case "fortran_order":
			h.fortran, err = p.boolean()
		case "shape":
			h.shape, err = p.tuple()
		default:
			return h, fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return h, fmt.Errorf("%s: %w", key, err)
		}
		seen[key] = true
		if !p.eat(',') {
			if !p.eat('}') {
				return h, fmt.Errorf("no ',' or '}' after %s", key)
			}
			break
		}
	}
	if p.space(); p.i != len(p.s) {
		return h, errors.New("text after the closing brace")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("no %q key", k)
		}
	}
	return h, nil
}

// scanner reads the tokens of a header from s, from position i on.
type scanner struct {
	s []byte
	i int
}

func (p *scanner) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// eat skips spaces and then c, if c is next.
func (p *scanner) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a quoted string without escapes, which is all a header holds.
func (p *scanner) str() (string, error) {
	p.space()
	if p.i == len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	quote := p.s[p.i]
	for j := p.i + 1; j < len(p.s) && p.s[j] != '\\' && p.s[j] != '\n'; j++ {
		if p.s[j] == quote {
			s := string(p.s[p.i+1 : j])
			p.i = j + 1
			return s, nil
		}
	}
	return "", errors.New("unterminated string")
}

func (p *scanner) boolean() (bool, error) {
	p.space()
	for _, w := range []string{"True", "False"} {
		if j := p.i + len(w); j <= len(p.s) && string(p.s[p.i:j]) == w && (j == len(p.s) || !isWordByte(p.s[j])) {
			p.i = j
			return w == "True", nil
		}
	}
	return false, errors.New("want True or False")
}

// tuple reads a tuple of integers: (), (3,), (2, 3) or (2, 3,).
func (p *scanner) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple of integers")
	}
	shape := []int{}
	for !p.eat(')') {
		d, err := p.integer()
		if err != nil {
			return nil, err
		}
		shape = append(shape, d)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("no ',' or ')' after a dimension")
			}
			if len(shape) == 1 { // Python reads (3) as the number 3.
				return nil, fmt.Errorf("(%d) is not a tuple; a 1-D shape is (%d,)", d, d)
			}
			break
		}
	}
	return shape, nil
}

// integer reads a decimal integer as Python writes one: perhaps signed, no
// leading zeros, and perhaps with Python 2's long suffix L, which NumPy
// still reads.
func (p *scanner) integer() (int, error) {
	p.space()
	neg := p.i < len(p.s) && p.s[p.i] == '-'
	if neg || (p.i < len(p.s) && p.s[p.i] == '+') {
		p.i++
		p.space()
	}
	j := p.i
	for j < len(p.s) && '0' <= p.s[j] && p.s[j] <= '9' {
		j++
	}
	digits := string(p.s[p.i:j])
	if j < len(p.s) && p.s[j] == 'L' {
		j++
	}
	if digits == "" || (j < len(p.s) && isWordByte(p.s[j])) || (digits[0] == '0' && strings.Trim(digits, "0") != "") {
		return 0, errors.New("want an integer dimension")
	}
	p.i = j
	if neg {
		digits = "-" + digits
	}
	d, err := strconv.Atoi(digits)
	if err != nil {
		return 0, fmt.Errorf("dimension %s is out of range", digits)
	}
	return d, nil
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
