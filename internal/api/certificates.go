package api

import (
	"net/http"
	"time"

	"github.com/aipress/aipress/internal/mtls"
)

// Certificates for the channel between edges and shards' gateways (package
// mtls): a shard agent or an edge sends a certificate request for its own
// key and gets a short-lived certificate naming the identity its token
// proves — never one it asks for: the request's subject and names are
// ignored.

// CertificateRequest is the body of POST /v1/agent/certificate and POST
// /v1/edge/certificate.
type CertificateRequest struct {
	// CSR is a PEM certificate request (ECDSA P-256) for the caller's key.
	CSR string `json:"csr"`
}

// CertificateResponse is their answer.
type CertificateResponse struct {
	// Identity is the certificate's identity (aipress://shard/NAME or
	// aipress://edge/TOKEN-ID).
	Identity    string    `json:"identity"`
	Certificate string    `json:"certificate"` // PEM
	CA          string    `json:"ca"`          // PEM: the CA bundle to trust (see MeshBundleResponse)
	NotAfter    time.Time `json:"not_after"`
}

func (s *server) agentCertificate(c *call) (response, error) {
	c.target = c.token.Subject
	return s.issueCertificate(c, mtls.Identity{Role: mtls.RoleShard, Name: c.token.Subject})
}

// edgeCertificate issues an edge's certificate; an edge is named by its
// token's ID (edge tokens have no subject).
func (s *server) edgeCertificate(c *call) (response, error) {
	c.target = c.token.ID
	return s.issueCertificate(c, mtls.Identity{Role: mtls.RoleEdge, Name: c.token.ID})
}

func (s *server) issueCertificate(c *call, id mtls.Identity) (response, error) {
	if s.mesh == nil {
		return response{}, s.noMesh()
	}
	var req CertificateRequest
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	if req.CSR == "" {
		return response{}, badRequest("csr is required: a PEM certificate request for your key")
	}
	st, err := s.mesh.current(c.r.Context())
	if err != nil {
		return response{}, err
	}
	cert, bundle, notAfter, err := s.mesh.ca.Issue(st, []byte(req.CSR), id, 0)
	if err != nil {
		return response{}, HTTPError{Status: http.StatusBadRequest, Code: CodeInvalidArgument, Msg: "invalid certificate request", Err: err}
	}
	// Issuing writes nothing the routing tables or agents watch.
	return response{status: http.StatusOK, unchanged: true, body: CertificateResponse{
		Identity: id.String(), Certificate: string(cert), CA: string(bundle), NotAfter: notAfter.UTC(),
	}}, nil
}
