// Package own holds concord's own compatibility tests. They drive a running
// concord agent through HashiCorp's official Go client
// (github.com/hashicorp/consul/api). The tests live in *_test.go files.
package own
