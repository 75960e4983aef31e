// Command saml-idp is the SAML 2.0 identity provider the Switchboard tests sign in at: crewjam/saml's
// samlidp (a maintained Go IdP: metadata, SSO over HTTP-Redirect and HTTP-POST, a login form,
// signed responses and assertions) with three test-only additions made through its public hooks:
//   - users come from a JSON file and may carry a fixed persistent NameID ("subject"), an attribute
//     profile (Okta- or Entra-style attribute names) and an AuthnContextClassRef ("authnContext"),
//     so one user signs in with a password and another asserts multi-factor authentication;
//   - the IdP key and certificate are generated on first start into --state-dir (tests read the key
//     to re-sign tampered responses with the IdP's own key);
//   - it listens on --listen (port 0 = any free port) and prints one JSON line
//     {"url":..., "metadataUrl":...} on stdout once it accepts connections.
// Service providers are registered through samlidp's own REST API: PUT /services/<id> with the SP's
// metadata XML. Test code only; never deployed.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
)

const persistentFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"

type testUser struct {
	Name         string   `json:"name"`
	Password     string   `json:"password"`
	Email        string   `json:"email"`
	DisplayName  string   `json:"displayName"`
	GivenName    string   `json:"givenName"`
	Surname      string   `json:"surname"`
	Groups       []string `json:"groups"`
	Subject      string   `json:"subject"`
	AuthnContext string   `json:"authnContext"`
}

type config struct {
	// Profile selects the attribute names: "okta" (email, displayName, firstName, lastName, groups)
	// or "entra" (the http://schemas... claim URIs Entra ID emits).
	Profile string     `json:"profile"`
	Users   []testUser `json:"users"`
}

// assertionMaker wraps samlidp's default assertion with the per-user NameID, attributes and
// authentication context.
type assertionMaker struct {
	users   map[string]testUser
	profile string
}

func attr(name string, values ...string) saml.Attribute {
	a := saml.Attribute{Name: name, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"}
	for _, v := range values {
		a.Values = append(a.Values, saml.AttributeValue{Type: "xs:string", Value: v})
	}
	return a
}

func (m assertionMaker) profileAttributes(u testUser) []saml.Attribute {
	var out []saml.Attribute
	if m.profile == "entra" {
		out = append(out,
			attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", u.Email),
			attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", u.Email),
			attr("http://schemas.microsoft.com/identity/claims/displayname", u.DisplayName),
			attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", u.GivenName),
			attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", u.Surname))
		if len(u.Groups) > 0 {
			out = append(out, attr("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", u.Groups...))
		}
		return out
	}
	out = append(out, attr("email", u.Email), attr("displayName", u.DisplayName),
		attr("firstName", u.GivenName), attr("lastName", u.Surname))
	if len(u.Groups) > 0 {
		out = append(out, attr("groups", u.Groups...))
	}
	return out
}

func (m assertionMaker) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	u, known := m.users[session.UserName]
	if known {
		if u.Subject != "" {
			session.NameID = u.Subject
			session.NameIDFormat = persistentFormat
		}
		session.CustomAttributes = m.profileAttributes(u)
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	if known && u.AuthnContext != "" {
		for i := range req.Assertion.AuthnStatements {
			req.Assertion.AuthnStatements[i].AuthnContext.AuthnContextClassRef = &saml.AuthnContextClassRef{Value: u.AuthnContext}
		}
	}
	return nil
}

// loadOrCreateKey returns the IdP's RSA key and self-signed certificate from dir, creating them on
// first start.
func loadOrCreateKey(dir string) (*rsa.PrivateKey, *x509.Certificate, error) {
	keyPath, certPath := filepath.Join(dir, "idp-key.pem"), filepath.Join(dir, "idp-cert.pem")
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	if kerr != nil || cerr != nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		tmpl := x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: "switchboard test saml-idp"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, nil, err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return nil, nil, err
		}
	}
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(certPEM)
	if kb == nil || cb == nil {
		return nil, nil, errors.New("cannot decode " + keyPath + " or " + certPath)
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	return key, cert, err
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 = any free port)")
	stateDir := flag.String("state-dir", "", "directory for the IdP key and certificate (required)")
	usersFile := flag.String("config", "", "JSON file with {profile, users:[...]} (required)")
	flag.Parse()
	if *stateDir == "" || *usersFile == "" {
		log.Fatal("saml-idp: --state-dir and --config are required")
	}
	raw, err := os.ReadFile(*usersFile)
	if err != nil {
		log.Fatalf("saml-idp: read config: %v", err)
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		log.Fatalf("saml-idp: parse config %s: %v", *usersFile, err)
	}
	key, cert, err := loadOrCreateKey(*stateDir)
	if err != nil {
		log.Fatalf("saml-idp: key: %v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("saml-idp: listen: %v", err)
	}
	base, _ := url.Parse("http://" + ln.Addr().String())
	store := &samlidp.MemoryStore{}
	server, err := samlidp.New(samlidp.Options{URL: *base, Key: key, Certificate: cert, Store: store})
	if err != nil {
		log.Fatalf("saml-idp: %v", err)
	}
	users := map[string]testUser{}
	for _, u := range cfg.Users {
		pw := u.Password
		// Groups are emitted by the profile attributes, not as samlidp's eduPersonAffiliation.
		su := samlidp.User{Name: u.Name, PlaintextPassword: &pw, Email: u.Email,
			CommonName: u.DisplayName, GivenName: u.GivenName, Surname: u.Surname}
		if err := putUser(server, su); err != nil {
			log.Fatalf("saml-idp: user %s: %v", u.Name, err)
		}
		users[u.Name] = u
	}
	server.IDP.AssertionMaker = assertionMaker{users: users, profile: cfg.Profile}
	line, _ := json.Marshal(map[string]string{"url": base.String(), "metadataUrl": base.String() + "/metadata"})
	fmt.Println(string(line))
	log.Fatal(http.Serve(ln, server))
}

// putUser stores a user the way samlidp's PUT /users/<name> does (bcrypt-hashed password).
func putUser(server *samlidp.Server, u samlidp.User) error {
	body, _ := json.Marshal(u)
	req, _ := http.NewRequest(http.MethodPut, "/users/"+u.Name, bytesReader(body))
	rec := &recorder{header: http.Header{}}
	server.ServeHTTP(rec, req)
	if rec.status >= 300 {
		return fmt.Errorf("PUT /users/%s answered %d", u.Name, rec.status)
	}
	return nil
}
