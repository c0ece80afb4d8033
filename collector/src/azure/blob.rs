//! Azure Blob storage reads: container and blob listings (XML, paged with markers) and ranged
//! reads, signed with the account key (SharedKey), a SAS token, or an Entra ID token.

use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::client::Api;
use super::encode_query;
use super::storage::{self, Service, StorageAuth};
use super::{ApiError, AzureClient};

const API: Api = storage::api(
    "blobStorage",
    "check the account key or SAS token (it needs read and list permission and must not have expired), or give the identity Storage Blob Data Reader on the account",
);
const VERSION: &str = "2021-08-06";

/// A blob as a listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub length: u64,
}

/// One page of a blob listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlobPage {
    pub blobs: Vec<BlobItem>,
    pub next_marker: Option<String>,
}

#[derive(Debug)]
pub struct BlobClient {
    service: Service,
}

impl BlobClient {
    pub fn new(
        client: Arc<AzureClient>,
        endpoint: &str,
        account: &str,
        auth: StorageAuth,
    ) -> BlobClient {
        BlobClient {
            service: Service::new(client, endpoint, account, auth),
        }
    }

    /// GET `path` (already encoded) with `params`; `range` asks for bytes `start..end`.
    async fn get(
        &self,
        path: &str,
        params: &[(&str, &str)],
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut url = format!("{}{path}", self.service.endpoint);
        let mut sorted: Vec<(&str, &str)> = params.to_vec();
        sorted.sort();
        for (i, (name, value)) in sorted.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_query(value));
        }
        if let Some(sas) = self.service.sas() {
            url.push(if sorted.is_empty() { '?' } else { '&' });
            url.push_str(sas);
        }
        let date = storage::now_header();
        let range_header =
            range.map(|(start, end)| format!("bytes={start}-{}", end.saturating_sub(1)));
        let mut request = self
            .service
            .http()
            .get(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", VERSION);
        if let Some(range) = &range_header {
            request = request.header("x-ms-range", range);
        }
        // Blob SharedKey signs the verb, eleven empty standard headers for a GET, the x-ms- headers
        // in order, and the resource with its query parameters.
        let string_to_sign = |resource: &str| {
            let mut signed = format!("GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\n");
            if let Some(range) = &range_header {
                signed.push_str(&format!("x-ms-range:{range}\n"));
            }
            signed.push_str(&format!("x-ms-version:{VERSION}\n{resource}"));
            for (name, value) in &sorted {
                signed.push_str(&format!("\n{}:{value}", name.to_ascii_lowercase()));
            }
            signed
        };
        let answer = self
            .service
            .send(request, &url, "SharedKey", string_to_sign, API, &[200, 206])
            .await?;
        Ok(answer.body)
    }

    /// Every container whose name starts with `prefix`.
    pub async fn list_containers(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let mut names = Vec::new();
        let mut marker = String::new();
        loop {
            let mut params = vec![("comp", "list"), ("prefix", prefix)];
            if !marker.is_empty() {
                params.push(("marker", &marker));
            }
            let body = self.get("/", &params, None).await?;
            let page = parse_listing(&body, "Container")
                .map_err(|reason| self.malformed(reason, &body))?;
            names.extend(page.blobs.into_iter().map(|c| c.name));
            match page.next_marker {
                Some(next) => marker = next,
                None => return Ok(names),
            }
        }
    }

    /// One page of the blobs in `container` whose names start with `prefix`, in name order.
    pub async fn list_blobs(
        &self,
        container: &str,
        prefix: &str,
        marker: Option<&str>,
    ) -> Result<BlobPage, ApiError> {
        let mut params = vec![
            ("comp", "list"),
            ("restype", "container"),
            ("prefix", prefix),
            ("maxresults", "1000"),
        ];
        if let Some(marker) = marker {
            params.push(("marker", marker));
        }
        let body = self
            .get(&format!("/{}", encode_path(container)), &params, None)
            .await?;
        parse_listing(&body, "Blob").map_err(|reason| self.malformed(reason, &body))
    }

    /// Bytes `start..end` of a blob.
    pub async fn read(
        &self,
        container: &str,
        blob: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let path = format!("/{}/{}", encode_path(container), encode_path(blob));
        self.get(&path, &[], Some((start, end))).await
    }

    fn malformed(&self, reason: String, body: &[u8]) -> ApiError {
        ApiError::Malformed {
            api: API.name,
            url: self.service.endpoint.clone(),
            reason,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

/// Percent-encodes a path, keeping its `/` separators.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_query)
        .collect::<Vec<_>>()
        .join("/")
}

/// The `<Name>`s (and `<Content-Length>`s) of the `item` elements of a listing, and its
/// `<NextMarker>`.
fn parse_listing(xml: &[u8], item: &str) -> Result<BlobPage, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("the listing is not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut page = BlobPage::default();
    let (mut name, mut length) = (None, 0u64);
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("the listing is not XML: {e}"))?
        {
            Event::Start(e) => path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned()),
            Event::End(_) => {
                if path.pop().as_deref() == Some(item)
                    && let Some(name) = name.take()
                {
                    page.blobs.push(BlobItem { name, length });
                    length = 0;
                }
            }
            Event::Text(t) => {
                let value = t
                    .unescape()
                    .map_err(|e| format!("the listing has a bad escape: {e}"))?;
                let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
                match path.last().map(String::as_str) {
                    Some("Name") if parent.map(String::as_str) == Some(item) => {
                        name = Some(value.into_owned())
                    }
                    Some("Content-Length") => {
                        length = value
                            .trim()
                            .parse()
                            .map_err(|_| format!("Content-Length {value:?} is not a number"))?
                    }
                    Some("NextMarker") if !value.trim().is_empty() => {
                        page.next_marker = Some(value.into_owned())
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_listing_gives_names_lengths_and_the_next_marker() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://x/" ContainerName="insights-logs-auditevent"><Prefix/><MaxResults>2</MaxResults><Blobs><Blob><Name>resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=22/h=06/m=00/PT1H.json</Name><Properties><Content-Length>1234</Content-Length><BlobType>AppendBlob</BlobType></Properties></Blob><Blob><Name>a&amp;b</Name><Properties><Content-Length>0</Content-Length></Properties></Blob></Blobs><NextMarker>2!8!bWFya2Vy</NextMarker></EnumerationResults>"#;
        let page = parse_listing(xml, "Blob").expect("listing");
        assert_eq!(
            page.blobs,
            vec![
                BlobItem {
                    name: "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=22/h=06/m=00/PT1H.json".into(),
                    length: 1234
                },
                BlobItem {
                    name: "a&b".into(),
                    length: 0
                },
            ]
        );
        assert_eq!(page.next_marker.as_deref(), Some("2!8!bWFya2Vy"));
        let last = parse_listing(
            br#"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>"#,
            "Blob",
        )
        .expect("empty");
        assert_eq!(last, BlobPage::default());
    }

    #[test]
    fn container_listings_name_containers() {
        let xml = br#"<EnumerationResults><Containers><Container><Name>insights-logs-auditevent</Name><Properties/></Container></Containers><NextMarker/></EnumerationResults>"#;
        let page = parse_listing(xml, "Container").expect("listing");
        assert_eq!(page.blobs[0].name, "insights-logs-auditevent");
    }
}
