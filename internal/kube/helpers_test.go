package kube_test

import (
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/aipress/aipress/internal/site"
)

func siteFor(name string) *site.Site {
	return &site.Site{
		Metadata: site.Metadata{Name: name, UID: "uid-" + name, CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: name, Title: name, Plan: "basic"},
		Status:   site.Status{Phase: site.PhasePending},
	}
}

func placeFn(shard string) func(*site.Site) error {
	return func(s *site.Site) error { s.Status.Shard = shard; return nil }
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
