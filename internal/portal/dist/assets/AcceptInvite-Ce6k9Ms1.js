import{j as t,T as e}from"./index-C5ChdGh-.js";function i(){return t.jsx(e,{order:2,children:"AcceptInvite"})}export{i as default};
