// Microsoft Entra ID in front of the admin routes (docs/security.md, "Callers"). App Service
// validates an admin's bearer token for the admin app registration and forwards its claims as
// X-MS-CLIENT-PRINCIPAL, stripping any such header a client sent; the app then requires the
// role ADMIN_REQUIRED_ROLE in it on /api/manage/* (shared/api/admin_auth.py). Authentication has
// no include list, so a request without a token still passes (AllowAnonymous): the platform's
// function key and the widget's anonymous calls work as before. The widget routes are excluded
// because authenticated widgets send their customers' own bearer tokens, not Entra ID tokens.
param functionAppName string
@description('Client id of the admin app registration: the audience of admins\' tokens.')
param clientId string
@description('Tenant of the admin app registration: the issuer of admins\' tokens.')
param tenantId string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName

  resource authentication 'config' = {
    name: 'authsettingsV2'
    properties: {
      platform: {
        enabled: true
      }
      globalValidation: {
        requireAuthentication: false
        unauthenticatedClientAction: 'AllowAnonymous'
        excludedPaths: [
          '/api/widgets/*'
        ]
      }
      httpSettings: {
        requireHttps: true
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: true
          registration: {
            clientId: clientId
            openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
          }
          validation: {
            allowedAudiences: [
              'api://${clientId}'
              clientId
            ]
          }
        }
      }
      login: {
        tokenStore: {
          enabled: false
        }
      }
    }
  }
}
