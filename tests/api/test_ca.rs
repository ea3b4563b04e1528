//! A throwaway certificate authority for the tests that need TLS on
//! loopback (the https metadata-document server, nginx in front of keygate):
//! a CA and a server certificate for `localhost` and 127.0.0.1 signed by it,
//! made with rcgen at test time. Nothing here is ever written outside a
//! test's temp dir.

/// A test CA and one server certificate it signed.
pub struct TestCa {
    /// The CA certificate (PEM): what clients trust.
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// The server certificate (DER).
    pub cert_der: Vec<u8>,
    /// The server certificate's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The server certificate's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA and a server certificate for `localhost` and 127.0.0.1.
    pub fn new() -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keygate test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            cert_der: leaf.der().to_vec(),
            key_pem: leaf_key.serialize_pem(),
            key_der: leaf_key.serialize_der(),
        }
    }
}
