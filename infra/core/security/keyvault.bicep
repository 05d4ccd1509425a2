// Key Vault in RBAC mode holding the key that signs reconnect links. The value comes from
// a secure parameter (never from the repository); the app reads it through a Key Vault
// reference resolved with its user-assigned identity.
param location string
param tags object
param name string

@secure()
param signingKey string

@description('Days a deleted vault or secret stays recoverable (7 to 90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@allowed([
  'default'
  'recover'
])
@description('`recover` brings back this vault from its soft-deleted state (after `azd down --purge`, which purge protection stops from purging); `default` creates it or updates it.')
param createMode string = 'default'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    createMode: createMode
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource signingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'RECONNECT-SIGNING-KEY'
  properties: {
    value: signingKey
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

output name string = vault.name
output endpoint string = vault.properties.vaultUri
// Versionless: the app always resolves the newest version of the secret.
output signingKeySecretUri string = signingKeySecret.properties.secretUri
output signingKeySecretVersion string = last(split(signingKeySecret.properties.secretUriWithVersion, '/'))
