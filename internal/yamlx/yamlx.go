// Package yamlx is loadtape's one strict YAML decoder. Every YAML file a
// person writes for loadtape (proxy rules, replay profiles, sim configs,
// targets files) goes through Decode: unknown fields, wrong types and bad
// values are errors of the form `FILE:LINE:COL: what was expected`, in one
// line, and no input makes it panic (go-yaml v1.19.2 does on some; the
// guard is here, once, for every caller). Doc finds the line of a value
// for the errors a caller's own checks find after decoding.
package yamlx

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Error is a YAML input error at a place in a file. Line and Col are
// 1-based; 0 when the place is not known.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Decode decodes data into v strictly: a key v has no field for is an
// error (a misspelt `op:` ignored would change what a file means). name
// labels the error, which is always an *Error.
func Decode(name string, data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &Error{File: name, Msg: fmt.Sprintf("not valid YAML (%v)", p)}
		}
	}()
	if err := yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField()); err != nil {
		return wrap(name, data, err)
	}
	return nil
}

// wrap turns a go-yaml error (a position and a message with a source
// excerpt) into one line with the position in front.
func wrap(name string, data []byte, err error) *Error {
	e := &Error{File: name}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e.Msg = firstLine(ye.GetMessage())
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	// A field's own unmarshaler may say where (runspec.Limit does);
	var pe interface{ GetToken() *token.Token }
	if errors.As(err, &pe) {
		e.Msg = firstLine(err.Error())
		if tk := pe.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	// else (a duration) it fails without a position: find the value it
	// quotes among the tokens.
	e.Msg = firstLine(err.Error())
	e.Line, e.Col = quotedValuePos(data, e.Msg)
	return e
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// quotedValuePos is the position of the first scalar quoted in msg, such
// as "soon" in `time: invalid duration "soon"`; 0, 0 when none matches.
func quotedValuePos(data []byte, msg string) (line, col int) {
	defer func() {
		if recover() != nil {
			line, col = 0, 0 // a position is a courtesy; never fail over it
		}
	}()
	i := strings.IndexByte(msg, '"')
	j := strings.IndexByte(msg[i+1:], '"')
	if i < 0 || j < 0 {
		return 0, 0
	}
	val := msg[i+1 : i+1+j]
	for _, tk := range lexer.Tokenize(string(data)) {
		if tk.Value == val && tk.Position != nil {
			return tk.Position.Line, tk.Position.Column
		}
	}
	return 0, 0
}

// Doc is a parsed file, for the positions of values that a caller's checks
// find wrong after Decode. A file that does not parse gives a Doc that
// knows no positions.
type Doc struct {
	name string
	file *ast.File
}

// Parse parses data for Pos and Errorf; it never fails or panics.
func Parse(name string, data []byte) (d *Doc) {
	d = &Doc{name: name}
	defer func() {
		if recover() != nil {
			d.file = nil
		}
	}()
	if f, err := parser.ParseBytes(data, 0); err == nil {
		d.file = f
	}
	return d
}

// Pos is the line and column where the value at path is written: path
// holds mapping keys (string) and sequence indexes (int), from the top,
// e.g. ("targets", 2, "metric"). When the whole path is not in the file
// (a default value, a key left out) it is the position of the longest
// part that is; 0, 0 when none is.
func (d *Doc) Pos(path ...any) (line, col int) {
	if d == nil || d.file == nil || len(d.file.Docs) == 0 {
		return 0, 0
	}
	defer func() {
		if recover() != nil {
			line, col = 0, 0
		}
	}()
	n := d.file.Docs[0].Body
	var at *token.Token
	for _, p := range path {
		key, tok, next := step(n, p)
		if key != nil {
			at = key // a key's own line, where a person looks for it
		} else if tok != nil {
			at = tok
		} else {
			break
		}
		if next == nil {
			break
		}
		n = next
	}
	if at == nil || at.Position == nil {
		return 0, 0
	}
	return at.Position.Line, at.Position.Column
}

// step goes one element of a path down from n: the key token (for a
// mapping), the value's own token, and the value.
func step(n ast.Node, p any) (key, tok *token.Token, next ast.Node) {
	n = unwrap(n)
	switch k := p.(type) {
	case string:
		var values []*ast.MappingValueNode
		switch m := n.(type) {
		case *ast.MappingNode:
			values = m.Values
		case *ast.MappingValueNode:
			values = []*ast.MappingValueNode{m}
		}
		for _, mv := range values {
			if mv.Key != nil && keyText(mv.Key) == k {
				return mv.Key.GetToken(), unwrapTok(mv.Value), mv.Value
			}
		}
	case int:
		if s, ok := n.(*ast.SequenceNode); ok && k >= 0 && k < len(s.Values) {
			return nil, unwrapTok(s.Values[k]), s.Values[k]
		}
	}
	return nil, nil, nil
}

func keyText(k ast.MapKeyNode) string {
	if tk := k.GetToken(); tk != nil {
		return tk.Value
	}
	return k.String()
}

func unwrap(n ast.Node) ast.Node {
	for i := 0; i < 8; i++ { // anchors and tags nest only so deep in practice
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		default:
			return n
		}
	}
	return n
}

func unwrapTok(n ast.Node) *token.Token {
	switch v := unwrap(n).(type) {
	case nil:
		return nil
	case *ast.MappingValueNode: // a block mapping of one key: its token is the colon
		if v.Key != nil {
			return v.Key.GetToken()
		}
		return v.GetToken()
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0].Key != nil {
			return v.Values[0].Key.GetToken()
		}
		return v.GetToken()
	default:
		return v.GetToken()
	}
}

// Errorf is an *Error at the position of path (see Pos).
func (d *Doc) Errorf(path []any, format string, args ...any) error {
	e := &Error{Msg: fmt.Sprintf(format, args...)}
	if d != nil {
		e.File = d.name
		e.Line, e.Col = d.Pos(path...)
	}
	return e
}
