-- Maps the CRM's account export (Salesforce-style column names) onto billrun's
-- `customers` template. `source` is the export, every column as text.
SELECT
    "AccountId"                                        AS customer_id,
    "AccountName"                                      AS name,
    upper("BillingCurrency")                           AS currency,
    "Billing_Day__c"                                   AS billing_day,
    regexp_replace("Payment_Terms__c", '^Net ', '')    AS payment_terms_days,
    nullif("Tax_Region__c", '')                        AS tax_region,
    "Billing_Email__c"                                 AS email
FROM source
