package main

// The sequential specification the history is checked against: a set of
// independent registers (one per KV key), with read, write and
// compare-and-set. Every written value is unique, so a CAS on the
// ModifyIndex the client read is the same as a CAS on the value it read.

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

type opKind int

const (
	opRead opKind = iota
	opWrite
	opCAS
)

type kvInput struct {
	Kind  opKind
	Key   string
	Value string // written value (write, CAS)
	Want  string // value the CAS expects ("" = key absent)
	Mode  string // read consistency: "consistent" or "default"
}

type kvOutput struct {
	Value   string // read result ("" = key absent)
	OK      bool   // CAS result
	Unknown bool   // a write or CAS whose outcome the client never learned
}

// registerModel partitions the history by key; a key's state is its value.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, seen := byKey[k]; !seen {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, k := range order {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		cur := state.(string)
		in, out := input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opRead:
			return out.Value == cur, cur
		case opWrite:
			return true, in.Value
		case opCAS:
			matches := cur == in.Want
			if out.Unknown {
				// Linearized here it took effect exactly when it matched; "never
				// took effect" is covered by linearizing it after everything else.
				if matches {
					return true, in.Value
				}
				return true, cur
			}
			if out.OK {
				return matches, in.Value
			}
			return !matches, cur
		}
		return false, cur
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opRead:
			return fmt.Sprintf("read(%s, %s) -> %q", in.Key, in.Mode, out.Value)
		case opWrite:
			if out.Unknown {
				return fmt.Sprintf("write(%s, %q) -> ?", in.Key, in.Value)
			}
			return fmt.Sprintf("write(%s, %q)", in.Key, in.Value)
		default:
			if out.Unknown {
				return fmt.Sprintf("cas(%s, %q -> %q) -> ?", in.Key, in.Want, in.Value)
			}
			return fmt.Sprintf("cas(%s, %q -> %q) -> %v", in.Key, in.Want, in.Value, out.OK)
		}
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state.(string)) },
}
