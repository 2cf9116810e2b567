//! Both directions of the codec must turn any bytes into a value or an error,
//! never a panic or an unbounded allocation; and whatever decodes must
//! survive a re-encode/decode round trip unchanged. (Byte-for-byte
//! canonicity is not required: postcard accepts overlong varints.)
#![no_main]

use gofer::protocol::{decode_request, decode_response, encode_request, encode_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        let bytes = encode_request(&req).expect("a decoded request re-encodes");
        assert!(bytes.len() <= data.len(), "re-encoding grew the request");
        assert_eq!(decode_request(&bytes).expect("re-encoded request decodes"), req);
    }
    if let Ok(resp) = decode_response(data) {
        let bytes = encode_response(&resp).expect("a decoded response re-encodes");
        assert!(bytes.len() <= data.len(), "re-encoding grew the response");
        assert_eq!(decode_response(&bytes).expect("re-encoded response decodes"), resp);
    }
});
